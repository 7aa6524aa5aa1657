"""The M2 DSM training step written in Python with `ebm.Var` ops (each op runs in Rust) against the
same step in PyTorch eager, side by side in one process at 1 thread (issue 19); plus the per-op
cost of crossing from Python into Rust, against PyTorch's per-op dispatch.

    # ebm built into the package venv (maturin develop --release), torch from bench/.venv:
    PYTHONPATH=<site-packages holding ebm> bench/.venv/bin/python bench/python/bench_ebm_python.py

Every step: draw a batch of 8-Gaussians (1024 rows) and the noise, the DSM loss (sigma = 0.1) of the
2-128-128-1 SiLU MLP with its input gradient recorded (create_graph), the parameter gradient, one
Adam update (lr 1e-3). ebm twice: the whole step written in Python (`make_ebm_step`), and the
library's DSM objective training the same Python-written energy (`make_ebm_objective_step`:
`ebm.Objective("dsm").step(energy, ...)`, which calls the energy once per row block of the Rust
step). Prints one table and a JSON line.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import common as C  # noqa: E402
import data as D  # noqa: E402
import ebm  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
PARAMS = C.PARAM_NAMES
SIGMA = C.DSM_SIGMA


def energy(x, p):
    """E(x) = l2(silu(l1(silu(l0(x))))), one value per row, in ebm.Var ops."""
    h = x.linear(p[0], p[1]).silu()
    h = h.linear(p[2], p[3]).silu()
    return h.linear(p[4], p[5]).reshape(x.shape[0])


def make_ebm_step(seed: int = 0):
    dims, batch = C.MODELS["M2"]["dims"], C.MODELS["M2"]["batch"]
    model = ebm.Mlp(dims, seed=seed)  # PyTorch's nn.Linear initialisation
    params = model.params
    opt = ebm.Optimizer(params, "adam", lr=C.LR, betas=(C.BETA1, C.BETA2), eps=C.ADAM_EPS)
    rng = np.random.default_rng(seed)

    def step():
        x = D.eight_gaussians(batch, rng)
        z = rng.standard_normal((batch, 2), dtype=np.float32)
        tape = ebm.Tape()
        p = params.bind(tape)
        xt = tape.var(x + SIGMA * z)
        s = -ebm.grad(energy(xt, p).sum(), xt, create_graph=True)
        loss = 0.5 * ((s + (xt.detach() - x) / SIGMA**2) ** 2).sum(axis=1).mean()
        opt.step(params, ebm.grad(loss, p))
        return loss

    return step


def make_ebm_objective_step(seed: int = 0):
    dims, batch = C.MODELS["M2"]["dims"], C.MODELS["M2"]["batch"]
    params = ebm.Mlp(dims, seed=seed).params
    opt = ebm.Optimizer(params, "adam", lr=C.LR, betas=(C.BETA1, C.BETA2), eps=C.ADAM_EPS)
    rng = np.random.default_rng(seed)
    objective = ebm.Objective("dsm", D.eight_gaussians(batch, rng), sigma=SIGMA)
    noise = ebm.Rng(seed)

    def step():
        return objective.step(energy, opt, D.eight_gaussians(batch, rng), noise, params=params)

    return step


def per_call_ns(f, n=200_000, repeats=5) -> float:
    """Median over `repeats` of the mean time per call of f, in ns."""
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        best.append((time.perf_counter() - t0) / n * 1e9)
    return statistics.median(best)


def op_overheads():
    """Per-op cost on a one-element operand (the work itself is a few ns): what a Python call
    into Rust (argument parsing, the op's bookkeeping on the tape, the result object) costs,
    against PyTorch eager dispatch of the same op, with and without autograd recording."""
    tape = ebm.Tape()
    v = tape.var(np.ones(1, dtype=np.float32))
    c = tape.constant(np.ones(1, dtype=np.float32))
    tt = torch.ones(1, requires_grad=True)
    tc = torch.ones(1)
    rows = {
        "x + 1.0 (recorded)": (lambda: v + 1.0, lambda: tt + 1.0),
        "x * y (recorded)": (lambda: v * v, lambda: tt * tt),
        "silu(x) (recorded)": (lambda: v.silu(), lambda: torch.nn.functional.silu(tt)),
        "x + 1.0 (constant)": (lambda: c + 1.0, lambda: tc + 1.0),
    }
    out = {}
    for name, (fe, ft) in rows.items():
        tape = ebm.Tape()  # a fresh tape per row so recorded nodes do not pile up across rows
        v = tape.var(np.ones(1, dtype=np.float32))
        out[name] = (per_call_ns(fe, n=100_000), per_call_ns(ft, n=100_000))
    return out


def main():
    import bench_torch as BT

    steps, warmup = 60, 5
    torch.manual_seed(0)
    t_step = BT.make_eager_step("dsm", "M2")
    steps_by = {"ebm_python": make_ebm_step(0), "ebm_objective": make_ebm_objective_step(0),
                "torch": t_step}
    # interleave them so background load hits all alike
    times = {k: [] for k in steps_by}
    for i in range(warmup + steps):
        for k, f in steps_by.items():
            t0 = time.perf_counter()
            f()
            if i >= warmup:
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    me, mo, mt = med["ebm_python"], med["ebm_objective"], med["torch"]
    print("| M2 dsm step, 1 thread | steps/s (median of %d) | ebm/PyTorch eager |" % steps)
    print("|---|---:|---:|")
    print(f"| ebm: the step written in Python (ebm.Var ops) | {1 / me:.1f} | {mt / me:.2f} |")
    print(f"| ebm: ebm.Objective('dsm') on the Python energy | {1 / mo:.1f} | {mt / mo:.2f} |")
    print(f"| PyTorch eager | {1 / mt:.1f} | 1 |")
    print()
    ov = op_overheads()
    print("| op on a 1-element operand | ebm.Var (ns/call) | torch eager (ns/call) | torch/ebm |")
    print("|---|---:|---:|---:|")
    for name, (a, b) in ov.items():
        print(f"| {name} | {a:.0f} | {b:.0f} | {b / a:.2f} |")
    line = dict(workload="dsm", model="M2", threads=1, ebm_python_steps_per_s=1 / me,
                ebm_objective_steps_per_s=1 / mo, torch_eager_steps_per_s=1 / mt,
                ratio=mt / me, objective_ratio=mt / mo,
                op_ns={k: {"ebm": a, "torch": b} for k, (a, b) in ov.items()},
                ebm=ebm.__version__, torch=torch.__version__, numpy=np.__version__)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
