"""Markdown table of bench/gemm.sh: ebm's GEMM against XLA's, per shape.

    python3 bench/python/gemm_table.py bench/results/gemm_xla_vs_ebm.jsonl

Per shape: the median over rounds of each side's GFLOP/s, ebm/XLA as the median of the per-round
ratios (range in brackets), and ebm's median as a fraction of the measured one-thread FMA peak.
Standard library only.
"""
from __future__ import annotations

import json
import sys

from table import median


def main(argv) -> int:
    rates, peaks, order = {}, [], []
    for raw in open(argv[1]):
        if not raw.startswith("{"):
            continue
        d = json.loads(raw)
        side = "xla" if d.get("path") == "xla" else "ebm"
        if d["shape"] not in order:
            order.append(d["shape"])
        rates.setdefault((d["shape"], side), {})[d.get("round", 0)] = d["gflops"]
        if side == "ebm" and d.get("peak_gflops"):
            peaks.append(d["peak_gflops"])
            path = d.get("path")
    peak = median(peaks) if peaks else None
    print(f"ebm GEMM path: {path if peaks else '?'}; measured one-thread f32 FMA peak "
          f"{peak:.1f} GFLOP/s (median over rounds); 1 thread\n" if peak else "")
    print("| product (M×K·K×N, T: stored transposed) | ebm GFLOP/s | XLA GFLOP/s | ebm/XLA | ebm of peak |")
    print("|---|---:|---:|---:|---:|")
    for shape in order:
        e, x = rates.get((shape, "ebm"), {}), rates.get((shape, "xla"), {})
        pairs = [e[r] / x[r] for r in e.keys() & x.keys() if x[r]]
        ratio = (f"{median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f})" if len(pairs) > 1
                 else f"{pairs[0]:.2f}" if pairs else "n/a")
        em = median(list(e.values())) if e else None
        xm = median(list(x.values())) if x else None
        print(f"| {shape} | {em:.1f} | {xm:.1f} | {ratio} | "
              f"{em / peak:.0%} |" if em and xm and peak else f"| {shape} | n/a | n/a | {ratio} | n/a |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
