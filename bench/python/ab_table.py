"""The table of bench/ab_bench.sh's output: per cell, new/old speed of each paired run and the median."""
import collections
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
pairs = collections.defaultdict(dict)
for r in rows:
    x = r["r"]
    pairs[(f"{x['workload']} {x['model']}", r["rep"])][r["side"]] = (x["median_step_s"], r["load"])
cells = collections.defaultdict(list)
for (cell, _), v in pairs.items():
    if "old" in v and "new" in v:
        cells[cell].append((v["old"][0] / v["new"][0], v["old"][1]))
print("| cell | new/old speed per run (load average) | median |")
print("|---|---|---:|")
for cell, v in cells.items():
    runs = " / ".join(f"{r:.2f} ({load})" for r, load in v)
    print(f"| {cell} | {runs} | {statistics.median(r for r, _ in v):.2f} |")
