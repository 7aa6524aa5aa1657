"""Log-log plot of one sweep of bench/sweeps.sh: throughput of ebm, JAX (jit) and PyTorch eager
against the swept size, one line per (framework, workload), and where the workload is made of
matrix products the bound "all of ebm's GEMM work at the measured FMA peak" as a dashed line.

    python3 bench/python/sweep_plot.py width bench/results/sweep_width.jsonl out.png

Needs matplotlib only (not the benchmark venv).
"""
from __future__ import annotations

import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import table  # noqa: E402  (bench/python: which result lines count, and their statistic)

AXIS = {  # sweep -> (spec letter of the x axis, x label, y label)
    "width": ("w", "hidden width W (MLP 2-W-W-1, batch 1024)", "steps/s"),
    "batch": ("b", "batch B (MLP 2-256-256-1)", "steps/s"),
    "chains": ("c", "chains (MLP 2-128-128-1)", "chain-steps/s"),
    "dim": ("d", "data dimension D (MLP D-128-128-1, batch 128)", "steps/s"),
}
STAT = table.STAT  # TABLE_STAT, as in table.py: "min" on a busy machine
STYLE = {"ebm": "C0", "jax": "C1", "torch": "C2"}


def main(argv) -> int:
    sweep, src, dst = argv[1:4]
    letter, xlabel, ylabel = AXIS[sweep]
    series, bound, cpu, peak, isas = {}, {}, None, None, set()
    # the cells as the table reads them: the last run of each, median over its rounds
    results, _, _ = table.load([src])
    for (fw, workload, model, threads), d in results.items():
        if d.get("error") or threads != 1:
            continue
        m = re.search(letter + r"(\d+)", model)
        y = table.rate(d)
        if not m or y is None:
            continue
        x = int(m.group(1))
        series.setdefault((fw, workload), {})[x] = y
        if fw == "ebm":
            cpu = d.get("cpu", cpu)
            if d.get("isa"):
                isas.add(d["isa"])
            peak = d.get("fma_peak_gflops") or peak
            g = d.get("matmul_gflop_per_step")
            if peak and g and workload != "langevin":
                bound.setdefault(workload, {})[x] = peak / g
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
    # which of ebm's code paths drew the curve: the same CPU's AVX-512 and forced-AVX2 curves
    # look alike otherwise
    isa = f", ebm on {'/'.join(sorted(isas))}" if isas else ""
    ax.set_title(f"{sweep} sweep, {cpu or '?'}{isa}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
