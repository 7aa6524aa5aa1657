"""ebm from Python: energy-based models with the training step and the samplers in Rust.

    import numpy as np, ebm

    run = ebm.train(data="8gaussians", objective="dsm", steps=500, quiet=True)
    print(run.eval["test_nll"], run.metrics[-1]["loss"])
    x, info = run.sample(1000, sampler="mala")         # NumPy arrays out

    tape = ebm.Tape()                                   # your own energy, any-order derivatives
    x = tape.var(np.random.randn(64, 2))
    e = 0.5 * (x * x).sum(axis=1) + ebm.log1p(x.square()).sum(axis=1)
    score = -ebm.grad(e.sum(), x).value
    hdiag = ebm.hessian_diag(e, x).value

Everything heavy runs in Rust: ops on `Var`s, `grad`/`hvp`/`hessian_diag`/`jvp`, the samplers
(`ebm.sample`, also on a Python energy), objectives by name (`ebm.Objective`) and `ebm.train`,
which is the `ebm train` command itself (same flags as keywords, same messages, the same numbers
at the same seed) run with the GIL released.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from . import _ebm
from ._ebm import (  # noqa: F401
    GradcheckError,
    Model,
    Objective,
    Optimizer,
    Params,
    Rng,
    Tape,
    Var,
    __version__,
    concat,
    grad,
    gradcheck,
    gradgradcheck,
    hessian_diag,
    hvp,
    jvp,
    objective_names,
    objective_options,
    sample,
    sampler_names,
)

__all__ = [
    "Tape", "Var", "Rng", "Params", "Model", "Mlp", "Optimizer", "Objective", "Run",
    "GradcheckError", "grad", "hvp", "hessian_diag", "jvp", "gradcheck", "gradgradcheck",
    "concat", "where", "objective_names", "objective_options", "sample", "sampler_names",
    "train", "load",
]


def Mlp(widths, activation: str = "silu", seed: int = 0, dtype: str = "float32") -> Model:
    """An MLP energy with layer widths (input, hidden..., 1), PyTorch's default initialisation."""
    return Model.mlp(list(widths), activation=activation, seed=seed, dtype=dtype)


def where(cond, a: Var, b: Var) -> Var:
    """`cond ? a : b` elementwise, for a constant condition (nonzero = true)."""
    return Var.where_(np.asarray(cond, dtype=np.float64), a, b)


def _unary(name: str):
    def op(x: Var) -> Var:
        return getattr(x, name)()
    op.__name__ = name
    op.__doc__ = f"`x.{name}()`."
    return op


_UNARY = ("exp", "expm1", "log", "log1p", "sqrt", "square", "recip", "tanh", "sigmoid",
          "log_sigmoid", "softplus", "silu", "relu", "abs", "sin", "cos", "elu", "gelu")
for _name in _UNARY:
    globals()[_name] = _unary(_name)
    __all__.append(_name)


def _flag_args(flags: Dict[str, Any]) -> List[str]:
    """Keywords as `ebm train` flags: hidden=[64, 64] -> --hidden 64,64; no_standardize=True ->
    --no-standardize; None and False are left out."""
    argv: List[str] = []
    for key, value in flags.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(str(v) for v in value)]
        elif isinstance(value, float):
            argv += [flag, repr(value)]
        else:
            argv += [flag, str(value)]
    return argv


def _data_file(data: np.ndarray, out: Optional[str]) -> str:
    """An array given as training data, saved once as .npy (named by its contents) beside the
    run directories, so the run's configuration points at a file like any other."""
    arr = np.ascontiguousarray(data)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"data: expected a float32 or float64 array, got dtype {arr.dtype}; "
                        "convert it with .astype(numpy.float64)")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"data: expected rows of samples, an array of shape [n, d], got shape {arr.shape}")
    digest = hashlib.sha256(arr.tobytes() + str((arr.dtype, arr.shape)).encode()).hexdigest()[:16]
    folder = Path(out).parent if out else Path("runs")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"data-{digest}.npy"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, path)
    return str(path)


def train(data: Any = "8gaussians", objective: Optional[str] = None, *, out: Optional[str] = None,
          resume: Optional[str] = None, **flags: Any) -> "Run":
    """Runs `ebm train` in this process (GIL released) and returns the run.

    `data` is a toy set's name, a .csv/.npy path or a float array of rows; every other keyword is
    a flag of `ebm train` with `_` for `-` (steps=500, hidden=[64, 64], lr=1e-3, sigma=0.1,
    no_report=True, quiet=True, ...). Same seed and flags as the command line, bit-identical
    parameters. Bad flags raise ValueError with the command's message, a missing file
    FileNotFoundError.
    """
    argv: List[str] = []
    if resume is not None:
        argv += ["--resume", os.fspath(resume)]
    else:
        if isinstance(data, np.ndarray):
            data = _data_file(data, out)
        argv += ["--data", os.fspath(data)]
        if objective is not None:
            argv += ["--objective", objective]
        if out is not None:
            argv += ["--out", os.fspath(out)]
    argv += _flag_args(flags)
    directory, finished = _ebm.train(argv)
    return Run(directory, finished=finished)


def load(path: Any) -> "Run":
    """A trained run from its directory (or a checkpoint file such as RUN/best.safetensors)."""
    path = Path(path)
    run = Run(path if path.is_dir() else path.parent, finished=True)
    run._loaded = _ebm.load(os.fspath(path))
    return run


class Run:
    """A run directory of `ebm train`: its configuration, metrics and evaluation as dicts, and
    the trained model (loaded on first use) with energy, score, sample, log_z and nll."""

    def __init__(self, directory: Any, finished: bool = True):
        self.dir = Path(directory)
        self.finished = finished
        self._loaded = None

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, finished={self.finished})"

    def _json(self, name: str) -> Optional[Dict[str, Any]]:
        p = self.dir / name
        return json.loads(p.read_text()) if p.exists() else None

    @property
    def config(self) -> Dict[str, Any]:
        """The run's configuration (config.json)."""
        return self._json("config.json") or {}

    @property
    def eval(self) -> Optional[Dict[str, Any]]:
        """The final evaluation (eval.json: NLL, log Z, MMD, KSD, ...), None without a report."""
        return self._json("eval.json")

    @property
    def metrics(self) -> List[Dict[str, Any]]:
        """Every metrics line (metrics.jsonl) as a dict."""
        p = self.dir / "metrics.jsonl"
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]

    @property
    def checkpoint(self) -> Path:
        """The last checkpoint file."""
        return self.dir / "checkpoint.safetensors"

    @property
    def loaded(self):
        """The model as loaded from the checkpoint (`ebm._ebm.LoadedRun`)."""
        if self._loaded is None:
            self._loaded = _ebm.load(os.fspath(self.dir))
        return self._loaded

    @property
    def model(self) -> Model:
        """A copy of the trained network."""
        return self.loaded.model

    @property
    def params(self) -> Dict[str, np.ndarray]:
        """The trained parameters (EMA weights when the run kept an EMA)."""
        return self.loaded.model.params.to_dict()

    def energy(self, x) -> np.ndarray:
        """E(x) per row."""
        return self.loaded.energy(x)

    def score(self, x) -> np.ndarray:
        """The score -grad_x E(x)."""
        return self.loaded.score(x)

    def sample(self, n: int = 1000, sampler: str = "auto", steps: Optional[int] = None,
               step_size: Optional[float] = None, seed: int = 0):
        """`n` samples as `ebm sample` draws them: (array [n, d], info dict)."""
        return self.loaded.sample(n, sampler, steps, step_size, seed)

    def log_z(self, ais_temps: int = 500, seed: int = 0) -> float:
        """log Z (quadrature for d <= 2, AIS above)."""
        return self.loaded.log_z(ais_temps, seed)

    def nll(self, x=None, ais_temps: int = 500, seed: int = 0) -> float:
        """Mean NLL in nats of rows x (default: the run's test rows)."""
        return self.loaded.nll(x, ais_temps, seed)
