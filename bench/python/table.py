"""Markdown table of benchmark results (JSON lines as printed by ebm-bench, bench_jax.py and
bench_torch.py).

    python bench/python/table.py bench/results/latest.jsonl

Rows: (workload, model, threads). Columns: steps/s for ebm, JAX, PyTorch eager and torch.compile
(for `langevin`: chain-steps/s), then the ratios ebm/JAX and ebm/PyTorch-eager (> 1: ebm faster).
With several rounds (bench/run.sh BENCH_ROUNDS) a rate is the median over the rounds and a ratio the
median of the per-round ratios (each from two runs side by side), with their range.
"n/a": no result line for that cell; "fail": the framework reported an error (see the JSONL file).
Uses only the standard library.
"""
from __future__ import annotations

import json
import os
import re
import sys

FRAMEWORKS = [("ebm", "ebm"), ("jax", "JAX (jit)"), ("torch", "PyTorch eager"),
              ("torch_compile", "torch.compile")]
WORKLOAD_ORDER = ["dsm", "esm", "ssm", "nce", "pcd", "langevin"]
MODEL_ORDER = ["M2", "M64", "C8", "R28"]
# torchebm's published eager PyTorch times on an A100 GPU (ms per step) for the shapes of issue 18
# item 3, keyed by this benchmark's (workload, model spec): the 2x128 SiLU MLP at batch 1024 and
# dimension 128 (DSM forward+backward; sliced SM with 5 projections; CD with 10 Langevin steps,
# run here as pcd with 10 steps), exact SM at batch 128, dimension 16, and Langevin on the
# analytic double well, 1024 chains x 128 dimensions (ms per Langevin step; the cell times 100).
TORCHEBM_A100_MS = {
    ("dsm", "d128w128b1024"): 5.6,
    ("ssm", "d128w128b1024p5"): 8.4,
    ("pcd", "d128w128b1024k10"): 10.5,
    ("esm", "d16w128b128"): 12.1,
    ("langevin", "dw128c1024s100"): 0.41,
}
BUSY = 0.2  # others_cpu (CPUs kept busy by other processes during the run) that marks a cell


# "median" (default), "min" or "cpu": the step time the table compares. On a machine shared with
# other work the least disturbed step ("min") or the CPU time per step of all the process's
# threads ("cpu"; at 1 thread the cost of a step whoever else takes turns on the CPU) say more
# about the code than the median.
STAT = os.environ.get("TABLE_STAT", "median")


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def rate(line):
    """The throughput compared in the table (the median over the rounds of its cell), or None."""
    if line is not None and line.get("_rounds"):
        rs = [r for r in line["_rounds"].values() if r is not None]
        return median(rs) if rs else None
    return line_rate(line)


def line_rate(line):
    """One result line's throughput, or None."""
    if line is None or line.get("error"):
        return None
    key = "chain_steps_per_s" if line.get("workload") == "langevin" else "steps_per_s"
    v = line.get(key)
    if v is None:
        return None
    if STAT in ("min", "cpu") and line.get("median_step_s"):
        t = line.get("min_step_s" if STAT == "min" else "cpu_s_per_step")
        if not t:
            return None
        return float(v) * line["median_step_s"] / t
    return float(v)


def fmt_rate(v, langevin=False):
    if v is None:
        return None
    if langevin:
        return f"{v / 1e6:.3g}M"
    return f"{v:.4g}" if v < 1e4 else f"{v:.0f}"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def paired_ratio(la, lb):
    """a/b for two cells' lines: the median of the per-round ratios with their range when both
    ran in two or more of the same rounds, else the ratio of the rates."""
    ra, rb = (la or {}).get("_rounds") or {}, (lb or {}).get("_rounds") or {}
    pairs = [ra[k] / rb[k] for k in ra.keys() & rb.keys() if ra[k] and rb[k]]
    if len(pairs) >= 2:
        return f"{median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f})"
    return fmt_ratio(rate(la), rate(lb))


def load(paths):
    """Per cell the line of median rate among the lines of the last run that ran it, with
    `_rounds` ({round: rate}) added; the fixture checks; other lines."""
    cells, checks, other = {}, {}, []
    for path in paths:
        with open(path) as f:
            for raw in f:
                raw = raw.strip()
                if not raw.startswith("{"):
                    continue
                try:
                    line = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                if "fixture_check" in line:
                    checks[line.get("framework")] = line  # the last check per framework
                elif {"framework", "workload", "model", "threads"} <= line.keys():
                    # the lines of the last run of a cell win (re-runs appended to the same file);
                    # a line without run id is a run of its own
                    key = (line["framework"], line["workload"], line["model"], int(line["threads"]))
                    prev = cells.get(key)
                    run = line.get("run_id")
                    if prev and run is not None and prev[0].get("run_id") == run:
                        prev.append(line)
                    else:
                        cells[key] = [line]
                else:
                    other.append(line)
    results = {}
    for key, lines in cells.items():
        rounds = {ln.get("round", i): line_rate(ln) for i, ln in enumerate(lines)}
        ok = sorted((r, i) for i, r in enumerate(line_rate(ln) for ln in lines) if r is not None)
        rep = dict(lines[ok[(len(ok) - 1) // 2][1]] if ok else lines[-1])
        rep["_rounds"] = rounds
        results[key] = rep
    return results, checks, other


def rounds_note(results) -> str:
    """How many rounds the cells ran ("3 rounds"; per thread count when a re-run of some rows
    with BENCH_APPEND ran a different number: "rounds: 9 at 1 thread, 3 at 2 threads"), or ""
    when every cell ran once."""
    by_threads = {}
    for (_, _, _, threads), v in results.items():
        by_threads.setdefault(threads, set()).add(len(v["_rounds"]))
    counts = sorted({n for ns in by_threads.values() for n in ns})
    if max(counts, default=1) <= 1:
        return ""
    if len(counts) == 1:
        return f"{counts[0]} rounds"
    parts = []
    for threads in sorted(by_threads):
        ns = sorted(by_threads[threads])
        n = ns[0] if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
        unit = "thread" if threads == 1 else "threads"
        parts.append(f"{n} at {threads} {unit}")
    return "rounds: " + ", ".join(parts)


def render_conv_gemm(lines) -> list:
    """The conv2d-vs-GEMM section (lines of bench/src/bin/convgemm.rs), or nothing."""
    rows = [v for v in lines if v.get("bench") == "conv_gemm"]
    if not rows:
        return []
    out = ["", "conv2d vs ebm's GEMM of its im2col shape (M x K x N), time ratio conv / GEMM "
           "(goal <= 1.3): forward, input gradient, weight gradient, all three", "",
           "| conv | M x K x N | threads | forward | input grad | weight grad | fwd+bwd "
           "| conv fwd GFLOP/s | GEMM fwd GFLOP/s |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for v in rows:
        out.append(f"| {v['what']} | {v['m']} x {v['k']} x {v['n']} | {v['threads']} | "
                   f"{v['fwd_ratio']:.2f} | {v['dx_ratio']:.2f} | {v['dw_ratio']:.2f} | "
                   f"{v['fwd_bwd_ratio']:.2f} | {v['conv_fwd_gflops']:.1f} | {v['gemm_fwd_gflops']:.1f} |")
    return out


def render(results, checks, other=()) -> str:
    def natural(name):  # d2w256b1024 before d2w1024b1024: numbers compare as numbers
        return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", name)]

    rows = sorted({(w, m, t) for (_, w, m, t) in results},
                  key=lambda r: (r[2], MODEL_ORDER.index(r[1]) if r[1] in MODEL_ORDER else 99,
                                 WORKLOAD_ORDER.index(r[0]) if r[0] in WORKLOAD_ORDER else 99,
                                 natural(r[1])))
    head = ["workload", "model", "threads"] + [name for _, name in FRAMEWORKS] + [
        "ebm/JAX", "ebm/PyTorch", "ebm ISA", "ebm GEMM GFLOP/s (of peak)", "GEMM at peak / step"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    for w, m, t in rows:
        cells, rates = [w, m, str(t)], {}
        for fw, _ in FRAMEWORKS:
            line = results.get((fw, w, m, t))
            rates[fw] = rate(line)
            if line is None:
                cells.append("n/a")
            elif line.get("error"):
                cells.append("fail")
            else:
                busy = (line.get("others_cpu") or 0) >= BUSY
                cells.append((fmt_rate(rates[fw], w == "langevin") or "n/a") + ("*" if busy else ""))
        cells += [paired_ratio(results.get(("ebm", w, m, t)), results.get(("jax", w, m, t))),
                  paired_ratio(results.get(("ebm", w, m, t)), results.get(("torch", w, m, t)))]
        e = results.get(("ebm", w, m, t)) or {}
        g, f = e.get("gemm_gflops"), e.get("gemm_fraction_of_peak")
        cells += [e.get("isa") or "n/a",
                  f"{g:.1f} ({f:.0%})" if g is not None and f is not None else "n/a"]
        # the time the step's GEMM work would take at the FMA peak over the step's on-CPU time
        # (1 thread: all the work is seen; robust to other processes taking turns on the CPU)
        gw, pk, cs = e.get("matmul_gflop_per_step"), e.get("fma_peak_gflops"), e.get("cpu_s_per_step")
        cells.append(f"{gw / pk / cs:.0%}" if gw and pk and cs and t == 1 else "n/a")
        out.append("| " + " | ".join(cells) + " |")
    cpus = sorted({v.get("cpu") for v in results.values() if v.get("cpu")})
    peaks = sorted({round(v["fma_peak_gflops"], 1) for v in results.values()
                    if v.get("fma_peak_gflops")})
    allocs = sorted({v.get("allocator") for v in results.values() if v.get("allocator")})
    huge = [v["huge_page_bytes"] for v in results.values() if v.get("huge_page_bytes") is not None]
    alloc = (f"; ebm's allocator: {', '.join(allocs)}"
             + (f" ({min(huge) >> 20}-{max(huge) >> 20} MiB in huge pages)" if huge else "")
             if allocs else "")
    if cpus:
        out.insert(0, f"CPU: {', '.join(cpus)}; measured one-thread f32 FMA peak "
                      f"{', '.join(str(p) for p in peaks)} GFLOP/s{alloc}\n")
    torchebm = [(w, m, t) for (w, m, t) in rows if (w, m) in TORCHEBM_A100_MS]
    if torchebm:
        out += ["", "torchebm shapes: ebm's CPU time per step beside torchebm's published eager "
                "PyTorch time on an A100 GPU", "", "| workload | model | threads | ebm ms (median wall, "
                "this CPU) | JAX ms | PyTorch ms | ebm on-CPU ms per step | torchebm A100 ms |",
                "|---|---|---|---:|---:|---:|---:|---:|"]
        for w, m, t in torchebm:
            # langevin: per Langevin step, as torchebm reports it (the cell times S of them)
            steps = re.search(r"s(\d+)$", m) if w == "langevin" else None
            per = int(steps.group(1)) if steps else 1
            ms = [results.get((fw, w, m, t)) for fw in ("ebm", "jax", "torch")]
            ms = [f"{1e3 * v['median_step_s'] / per:.3g}" if v and v.get("median_step_s") else "n/a"
                  for v in ms]
            e = results.get(("ebm", w, m, t)) or {}
            ms.append(f"{1e3 * e['cpu_s_per_step'] / per:.3g}" if e.get("cpu_s_per_step") else "n/a")
            out.append(f"| {w} | {m} | {t} | " + " | ".join(ms) + f" | {TORCHEBM_A100_MS[(w, m)]} |")
    out += render_conv_gemm(other)
    notes = ["", f"Throughput in steps/s ({STAT} step time over the timed steps); `langevin`: millions of "
             "chain-steps/s (10,000 chains x 100 steps per timed step). Ratios > 1 mean ebm is faster. "
             "GEMM GFLOP/s: FLOPs over time inside ebm's matrix products in one profiled step, and "
             "its fraction of the measured FMA peak (inflated by preemption inside a product on a busy "
             "machine); GEMM at peak / step: the step's GEMM FLOPs at the FMA peak over its on-CPU "
             "time (1 thread), the share of the step the products would need at the limit."]
    rounds = rounds_note(results)
    if rounds:
        notes.append(f"{rounds}, alternating which side runs first: rates are medians over the "
                     "rounds; ratios the median of the per-round ratios (range in brackets); the other "
                     "columns from ebm's run of median rate.")
    if any((v.get("others_cpu") or 0) >= BUSY for v in results.values()):
        notes.append(f"`*`: other processes kept >= {BUSY} CPU busy on average during that run (field "
                     "`others_cpu`); the 2 vCPUs share one core's vector units, so that number is low.")
    errors = [(k, v["error"]) for k, v in sorted(results.items()) if v.get("error")]
    if errors:
        notes.append("")
        notes.append("Failures:")
        notes += [f"- {fw} {w} {m} threads={t}: {msg}" for (fw, w, m, t), msg in errors]
    if checks:
        notes.append("")
        notes.append("Fixture checks (f64 losses and gradients vs autodiff/tests/data): " + "; ".join(
            f"{c['framework']} {c['fixture_check']} ({c.get('compared', '?')} tensors, worst scaled "
            f"diff {c.get('worst_scaled_diff', float('nan')):.1e})" for c in checks))
    return "\n".join(out + notes)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    results, checks, other = load(argv[1:])
    print(render(results, list(checks.values()), other))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
