#!/usr/bin/env bash
# On a GPU machine: ebm's CUDA benchmarks and PyTorch's on the same device, JSON lines into
# bench/cuda/results-<host>.jsonl, then the ratios (ebm / PyTorch eager) on stdout.
# Needs NVRTC 13.0 (the pinned wheel, as in .ci/run) and a Python with torch for the GPU.
#   bash bench/cuda/run.sh [python-with-torch]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${1:-python3}"
if [ ! -d .venv-cuda ]; then
    python3 -m venv .venv-cuda
    .venv-cuda/bin/pip install --quiet --no-cache-dir "nvidia-cuda-nvrtc==13.0.88"
fi
export LD_LIBRARY_PATH="$(.venv-cuda/bin/python -c 'import nvidia,os;print(os.path.join(list(nvidia.__path__)[0],"cu13","lib"))')${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="bench/cuda/results-$(hostname).jsonl"
: > "$out"
cargo build --release -p ebm-cuda-bench --features cuda --bins
for b in matmul langevin train; do
    ./target/release/"$b" | tee -a "$out"
    "$PY" bench/cuda/torch_gpu.py "$b" | tee -a "$out"
done
"$PY" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def pick(bench, **kw):
    return [r for r in rows if r["bench"] == bench and all(r.get(k) == v for k, v in kw.items())]
for n in sorted({r["chains"] for r in pick("langevin")}):
    t = pick("langevin", chains=n, path="torch_eager")
    for path in ("fused", "per_op"):
        e = pick("langevin", chains=n, path=path)
        if e and t:
            print(f"langevin {n:>8} chains: ebm {path:<7} / torch eager = {e[0]['chain_steps_per_s'] / t[0]['chain_steps_per_s']:.2f}x")
for b in sorted({r["batch"] for r in pick("train")}):
    e, t = pick("train", batch=b, optimizer="adam(tensor ops)"), pick("train", batch=b, path="torch_eager")
    if e and t:
        print(f"train dsm batch {b:>6}: ebm / torch eager = {e[0]['steps_per_s'] / t[0]['steps_per_s']:.2f}x")
for r in pick("matmul", engine="torch"):
    for eng in ("tiled", "cublas"):
        e = [x for x in pick("matmul", engine=eng, case=r["case"], dtype=r["dtype"])]
        if e:
            print(f"matmul {r['case']:<20} {r['dtype']} ebm {eng:<6} / torch = {e[0]['gflops'] / r['gflops']:.2f}x")
PY
