"""Shared definitions of the benchmark workloads (issue 8) and the harness used by bench_jax.py and
bench_torch.py: command line, timing, JSON output, fixture comparison.

Nothing here imports a framework, so the JAX script can set XLA_FLAGS before `import jax`.

Workloads (f32, Adam lr 1e-3; one timed "step" = draw a batch and the noise, compute the loss and
its parameter gradient, apply the Adam update):

| name     | what one step does                                                                  |
|----------|-------------------------------------------------------------------------------------|
| dsm      | denoising score matching, sigma = 0.1                                               |
| esm      | exact (implicit) score matching, exact Hessian diagonal (d backward passes)         |
| ssm      | sliced score matching, one Gaussian projection per sample                           |
| nce      | noise-contrastive estimation, nu = 1, learnable log Z                               |
| pcd      | 20 Langevin steps (eps = 0.01) on persistent chains, then the contrastive loss      |
| langevin | sampling only, M2: 100 Langevin steps (eps = 0.01) of 10,000 chains per timed step  |

Models: M2 = MLP 2-128-128-1 (SiLU), batch 1024, 8-Gaussians; M64 = MLP 64-256-256-1 (SiLU),
batch 256, digits / 16; the conv energies of CONV_MODELS (C8, R28; bench/python/conv_models.py).
Initialisation as PyTorch's nn.Linear / nn.Conv2d: W, b ~ U(-1/sqrt(fan_in), +1/sqrt(fan_in)).

The exact loss formulas are those of shared/fixtures/README.md; they are repeated next to each
implementation in the framework scripts.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

# numpy is imported where it is used: the machine description (cpu_and_isa_from) and its tests
# run on the standard library alone, in CI before any venv has numpy

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DIR = REPO_ROOT / "autodiff" / "tests" / "data"

WORKLOADS = ("dsm", "esm", "ssm", "nce", "pcd", "langevin")
MODELS = {
    # dims, batch, data set, NCE noise variance
    "M2": dict(dims=(2, 128, 128, 1), batch=1024, data="8gaussians", nce_var=4.0),
    "M64": dict(dims=(64, 256, 256, 1), batch=256, data="digits", nce_var=1.0),
}

# Conv energies (issue 14; bench/src/spec.rs builds the same with ebm_nn::ConvEnergy): 3x3 convs
# (padding 1) with bias, SiLU, stages after the first start with a 2x2 average pool, energy =
# head(sum over positions of silu(h)). C8 = `ebm train --data digits --arch conv --hidden 32,32`
# on the 1x8x8 digits; R28 = a small ResNet (one residual block per stage, GroupNorm(4)) on
# 1x28x28 uniform random images in [0, 1] (timing only).
CONV_MODELS = {
    "C8": dict(batch=128, data="digits",
               conv=dict(image=(1, 8, 8), widths=(32, 32), blocks=0, norm_groups=0)),
    "R28": dict(batch=64, data="uniform",
                conv=dict(image=(1, 28, 28), widths=(16, 32), blocks=1, norm_groups=4)),
}


def model_cfg(name: str) -> dict:
    """A model's settings: "M2" and "M64" above, or a spec for the sweeps and the torchebm
    shapes, `d{D}w{W}b{B}` plus optional `p{P}` (SSM projections), `k{K}` (pcd's Langevin
    steps), `c{C}` and `s{S}` (chains, and Langevin steps per timed step, of `langevin`): MLP
    D-W-W-1 SiLU, batch B, data 8-Gaussians when D = 2 and N(0, I) otherwise, NCE noise N(0, I);
    or `dw{D}c{C}s{S}`: `langevin` on the analytic double well h sum_i (x_i^2 - 1)^2 in D
    dimensions (h = DOUBLE_WELL_BARRIER), C chains, S steps. Parsed alike by bench/src/spec.rs."""
    base = dict(projections=1, pcd_steps=PCD_LANGEVIN_STEPS, chains=LANGEVIN_CHAINS,
                langevin_steps=LANGEVIN_STEPS)
    if name in MODELS:
        return {**base, **MODELS[name]}
    if name in CONV_MODELS:
        c, h, w = CONV_MODELS[name]["conv"]["image"]
        return {**base, **CONV_MODELS[name], "dims": (c * h * w,), "nce_var": 1.0}
    m = re.fullmatch(r"dw(\d+)c(\d+)s(\d+)", name)
    if m:  # the analytic double well h sum_i (x_i^2 - 1)^2: D dims, C chains, S steps
        if min(int(g) for g in m.groups()) < 1:
            raise ValueError(f"unknown model `{name}`")
        d, c, st = (int(g) for g in m.groups())
        return {**base, "dims": (d,), "batch": 1, "data": "normal", "nce_var": 1.0, "chains": c,
                "langevin_steps": st, "double_well": DOUBLE_WELL_BARRIER}
    m = re.fullmatch(r"d(\d+)w(\d+)b(\d+)(?:p(\d+))?(?:k(\d+))?(?:c(\d+))?(?:s(\d+))?", name)
    if not m or min(int(g) for g in m.groups() if g is not None) < 1:
        raise ValueError(f"unknown model `{name}` (M2, M64, C8, R28 or d<D>w<W>b<B>[p<P>][k<K>][c<C>][s<S>])")
    d, w, b, proj, k, c, st = m.groups()
    cfg = dict(dims=(int(d), int(w), int(w), 1), batch=int(b),
               data="8gaussians" if d == "2" else "normal", nce_var=1.0)
    for key, v in (("projections", proj), ("pcd_steps", k), ("chains", c), ("langevin_steps", st)):
        if v is not None:
            cfg[key] = int(v)
    return {**base, **cfg}


# (workload, model) cells of the benchmark; langevin is defined for M2 only.
CELLS = [(w, m) for m in MODELS for w in WORKLOADS if not (w == "langevin" and m != "M2")]

LR = 1e-3
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
DSM_SIGMA = 0.1
PCD_LANGEVIN_STEPS = 20
LANGEVIN_EPS = 0.01
PCD_REG = 0.1
LANGEVIN_CHAINS = 10_000
LANGEVIN_STEPS = 100  # Langevin steps per timed step of the `langevin` workload
DOUBLE_WELL_BARRIER = 2.0  # h of the `dw...` models (torchebm's double-well default)

PARAM_NAMES = ("l0.weight", "l0.bias", "l1.weight", "l1.bias", "l2.weight", "l2.bias")


def parse_args(framework_help: str, torch_modes: bool = False) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=framework_help)
    p.add_argument("--workload", choices=WORKLOADS + ("all",), default="all")
    p.add_argument("--model", default="all", help="M2, M64, C8, R28, all, or a spec (see model_cfg)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (1 or 2 here)")
    p.add_argument("--steps", type=int, default=30, help="timed steps (>= 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation included)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check-fixtures", action="store_true",
                   help="check the losses (f64) against the fixtures, then exit")
    p.add_argument("--info", action="store_true", help="print versions, BLAS and threads, then exit")
    p.add_argument("--fixtures", type=Path, default=FIXTURE_DIR)
    if torch_modes:
        p.add_argument("--torch-mode", choices=("eager", "compile", "both"), default="both",
                       help="eager PyTorch, torch.compile, or both (two JSON lines per cell)")
    args = p.parse_args()
    if args.model != "all":
        try:
            model_cfg(args.model)
        except ValueError as e:
            p.error(str(e))
    if args.steps < 30 and not (args.check_fixtures or args.info):
        p.error("--steps must be >= 30")
    return args


def cells(args: argparse.Namespace):
    """The (workload, model) pairs selected on the command line, in benchmark order."""
    if args.model not in MODELS and args.model != "all":
        return [(w, args.model) for w in WORKLOADS if args.workload in ("all", w)]
    return [(w, m) for (w, m) in CELLS
            if args.workload in ("all", w) and args.model in ("all", m)]


def time_steps(step, sync, warmup: int, steps: int):
    """Run `step()` warmup + steps times, calling `sync(out)` after each (so asynchronous dispatch
    is included), and return (first_step_seconds, [timed step seconds])."""
    first = None
    for i in range(warmup):
        t0 = time.perf_counter()
        sync(step())
        if i == 0:
            first = time.perf_counter() - t0
    times = []
    c0 = time.process_time()
    for _ in range(steps):
        t0 = time.perf_counter()
        sync(step())
        times.append(time.perf_counter() - t0)
    _CPU["s"] = time.process_time() - c0
    return first, times


# CPU seconds (all threads) of the last time_steps loop, for result_line
_CPU = {"s": None}


def cpu_and_isa() -> tuple[str, str]:
    """The CPU model with its family and model numbers, as ebm's result lines name it ("AMD EPYC
    (family 25, model 17)"), and the widest x86 vector FMA set it lists ("avx512", "avx2" or the
    machine's architecture), read from /proc/cpuinfo: the framework picks its own kernels within
    that."""
    import platform
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    model, isa = cpu_and_isa_from(info, platform.machine())
    if isa == "avx512" and os.environ.get("EBM_GEMM", "").strip() == "avx2":
        isa = "avx2"  # the driver's forced-AVX2 run holds every framework to AVX2
    return model, isa


def cpu_and_isa_from(cpuinfo: str, arch: str) -> tuple[str, str]:
    """`cpu_and_isa` from the text of /proc/cpuinfo; `arch` stands for whatever it does not say."""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "cpu family", "model", "flags") and key not in fields:
            fields[key] = value.strip()
        if not line.strip() and fields:
            break  # the first processor's block holds them all
    model = arch
    if "model name" in fields:
        model = fields["model name"]
        if "cpu family" in fields and "model" in fields:
            model += f" (family {fields['cpu family']}, model {fields['model']})"
    flags = set(fields.get("flags", "").split())
    isa = "avx512" if "avx512f" in flags else "avx2" if {"avx2", "fma"} <= flags else arch
    return model, isa


def result_line(framework: str, workload: str, model: str, threads: int, times, first_step_s,
                final_loss=None, **extra) -> dict:
    med = statistics.median(times)
    out = {
        "framework": framework,
        "workload": workload,
        "model": model,
        "threads": threads,
        "median_step_s": med,
        "steps_per_s": 1.0 / med,
    }
    if workload == "langevin":
        cfg = model_cfg(model)
        out["chain_steps_per_s"] = cfg["chains"] * cfg["langevin_steps"] / med
    out["timed_steps"] = len(times)
    out["cpu"], out["isa"] = cpu_and_isa()
    if _CPU["s"] is not None:
        # CPU time of all the process's threads per timed step: what a step costs when other
        # work takes turns on the CPUs (on 2 threads: the sum over both)
        out["cpu_s_per_step"] = _CPU["s"] / len(times)
    out["min_step_s"] = min(times)  # least disturbed step; compare with the median on a busy machine
    out["first_step_s"] = first_step_s
    if final_loss is not None:
        out["final_loss"] = final_loss
    out.update(extra)
    return out


def error_line(framework: str, workload: str, model: str, threads: int, err: BaseException) -> dict:
    msg = f"{type(err).__name__}: {err}".strip().splitlines()
    return {"framework": framework, "workload": workload, "model": model, "threads": threads,
            "median_step_s": None, "steps_per_s": None, "timed_steps": 0,
            "error": (msg[0] if msg else type(err).__name__)[:300]}


def emit(line: dict) -> None:
    print(json.dumps(line), flush=True)


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def load_fixtures(fixture_dir: Path):
    """(weights, inputs, expected) as float64 numpy dicts."""
    import numpy as np
    from safetensors.numpy import load_file

    def f64(d):
        return {k: np.asarray(v, dtype=np.float64) for k, v in d.items()}
    return tuple(f64(load_file(str(fixture_dir / f"M2_{n}.safetensors")))
                 for n in ("weights", "inputs", "expected"))


class FixtureCheck:
    """Collects comparisons against the fixtures; |got - want| <= tol * max(1, max|want|)."""

    def __init__(self, framework: str, tol: float = 1e-10):
        self.framework, self.tol, self.rows, self.failed = framework, tol, [], 0

    def compare(self, name: str, got, want) -> None:
        import numpy as np

        got = np.asarray(got, dtype=np.float64)
        want = np.asarray(want, dtype=np.float64)
        if got.shape != want.shape:
            got = got.reshape(want.shape)
        scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
        err = float(np.max(np.abs(got - want))) if want.size else 0.0
        ok = math.isfinite(err) and err <= self.tol * scale
        self.failed += not ok
        self.rows.append((name, err, scale, ok))

    def report(self) -> bool:
        worst = max((r[1] / r[2] for r in self.rows), default=0.0)
        for name, err, scale, ok in self.rows:
            if not ok or name.endswith(".loss"):
                log(f"  {'ok  ' if ok else 'FAIL'} {name:28s} max|diff| = {err:.3e} (scale {scale:.3g})")
        summary = {"framework": self.framework, "fixture_check": "pass" if not self.failed else "FAIL",
                   "compared": len(self.rows), "failed": self.failed,
                   "worst_scaled_diff": worst, "tolerance": self.tol}
        emit(summary)
        return not self.failed
