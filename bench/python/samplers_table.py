"""Markdown table of bench/samplers.sh's JSON lines: medians over repeats, ebm / BlackJAX ratios."""

import json
import statistics
import sys


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
    cells = []
    for r in rows:
        if (r["target"], r["sampler"]) not in cells:
            cells.append((r["target"], r["sampler"]))
    names = {"gauss": "Gaussian d=100, κ=100 (f64)", "mlp": "M2 MLP + ‖x‖²/8 (f32)"}

    def med(fw, t, s, key):
        v = [r[key] for r in rows if (r["framework"], r["target"], r["sampler"]) == (fw, t, s)]
        return (statistics.median(v), min(v), max(v), len(v)) if v else None

    print("| target | sampler | ESS/s ebm | ESS/s BlackJAX | ratio | ESS/grad ebm | ESS/grad BlackJAX "
          "| ratio | grads/s ebm | grads/s BlackJAX | ratio | runs | others_cpu |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t, s in cells:
        cols = []
        for key, fmt in [("ess_per_s", "{:.0f}"), ("ess_per_grad", "{:.4f}"), ("grads_per_s", "{:.0f}")]:
            e, b = med("ebm", t, s, key), med("blackjax", t, s, key)
            cols += [f"{fmt.format(e[0])} ({fmt.format(e[1])}–{fmt.format(e[2])})",
                     f"{fmt.format(b[0])} ({fmt.format(b[1])}–{fmt.format(b[2])})",
                     f"**{e[0] / b[0]:.2f}**"]
        n = (med("ebm", t, s, "seconds")[3], med("blackjax", t, s, "seconds")[3])
        oc = med("ebm", t, s, "others_cpu"), med("blackjax", t, s, "others_cpu")
        print(f"| {names[t]} | {s} | " + " | ".join(cols)
              + f" | {n[0]} / {n[1]} | {oc[0][0]:.2f} / {oc[1][0]:.2f} |")
    print()
    print("Medians over timed runs (min–max in brackets); ESS = smallest over coordinates; "
          "time and gradients cover warm-up + sampling; ratios ebm / BlackJAX (> 1: ebm ahead). "
          "others_cpu: median CPUs other processes kept busy during the runs (ebm / BlackJAX).")
    ts = [(r["target"], r["sampler"], r["framework"], r.get("trajectory_length"), r["step_size"])
          for r in rows]
    for t, s in cells:
        if s == "chees":
            for fw in ("ebm", "blackjax"):
                v = [x for x in ts if x[:3] == (t, s, fw)]
                lens = statistics.median([x[3] for x in v])
                eps = statistics.median([x[4] for x in v])
                print(f"\nChEES on {t}, {fw}: adapted trajectory length {lens:.2f}, step {eps:.3f}"
                      f" (medians)")


if __name__ == "__main__":
    main()
