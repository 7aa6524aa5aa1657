"""Log-log plot of one sweep of bench/sweeps.sh: throughput of ebm, JAX (jit) and PyTorch eager
against the swept size, one line per (framework, workload), and where the workload is made of
matrix products the bound "all of ebm's GEMM work at the measured FMA peak" as a dashed line.

    python3 bench/python/sweep_plot.py width bench/results/sweep_width.jsonl out.png

Needs matplotlib only (not the benchmark venv).
"""
from __future__ import annotations

import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

AXIS = {  # sweep -> (spec letter of the x axis, x label, y label)
    "width": ("w", "hidden width W (MLP 2-W-W-1, batch 1024)", "steps/s"),
    "batch": ("b", "batch B (MLP 2-256-256-1)", "steps/s"),
    "chains": ("c", "chains (MLP 2-128-128-1)", "chain-steps/s"),
    "dim": ("d", "data dimension D (MLP D-128-128-1, batch 128)", "steps/s"),
}
STAT = os.environ.get("TABLE_STAT", "median")  # as in table.py: "min" on a busy machine
STYLE = {"ebm": "C0", "jax": "C1", "torch": "C2"}


def main(argv) -> int:
    sweep, src, dst = argv[1:4]
    letter, xlabel, ylabel = AXIS[sweep]
    series, bound, cpu, peak = {}, {}, None, None
    for raw in open(src):
        if not raw.startswith("{"):
            continue
        d = json.loads(raw)
        if "workload" not in d or d.get("error") or d.get("threads") != 1:
            continue
        m = re.search(letter + r"(\d+)", d["model"])
        if not m:
            continue
        x = int(m.group(1))
        y = d.get("chain_steps_per_s") if d["workload"] == "langevin" else d.get("steps_per_s")
        if y is None:
            continue
        if STAT in ("min", "cpu") and d.get("median_step_s"):
            t = d.get("min_step_s" if STAT == "min" else "cpu_s_per_step")
            if not t:
                continue
            y *= d["median_step_s"] / t
        series.setdefault((d["framework"], d["workload"]), {})[x] = y
        if d["framework"] == "ebm":
            cpu = d.get("cpu", cpu)
            peak = d.get("fma_peak_gflops") or peak
            g = d.get("matmul_gflop_per_step")
            if peak and g and d["workload"] != "langevin":
                bound.setdefault(d["workload"], {})[x] = peak / g
    fig, ax = plt.subplots(figsize=(7, 4.5))
    marks = ["o", "s", "^", "D"]
    workloads = sorted({w for _, w in series})
    for (fw, w), pts in sorted(series.items()):
        xs = sorted(pts)
        ax.plot(xs, [pts[x] for x in xs], marker=marks[workloads.index(w) % 4], color=STYLE.get(fw, "C3"),
                label=f"{fw} {w}")
    for w, pts in sorted(bound.items()):
        xs = sorted(pts)
        ax.plot(xs, [pts[x] for x in xs], "--", color="grey", marker=marks[workloads.index(w) % 4],
                markerfacecolor="none", label=f"{w}: GEMM work at FMA peak ({peak:.0f} GFLOP/s)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{ylabel} (1 thread, {STAT} step)")
    ax.set_title(f"{sweep} sweep, {cpu or '?'}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
