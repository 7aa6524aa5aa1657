#!/usr/bin/env bash
# ebm's f32 GEMM against XLA's (jax.jit dot) on the products of the benchmark's models, side by
# side on one thread (CPU 0), in rounds that alternate which side runs first:
#
#   bash bench/gemm.sh                  # GEMM_ROUNDS=3, GEMM_NAME=gemm_xla_vs_ebm, GEMM_SHAPES
#
# ebm: core/examples/gemm_rate.rs; XLA: bench/python/gemm_xla.py (bench/.venv). Same shapes and
# timing rule (median rate of ~0.2 s of repetitions). Lines (with "round") go to
# bench/results/$GEMM_NAME.jsonl, the table (bench/python/gemm_table.py: medians over rounds, the
# ratio as the median of per-round ratios, ebm's fraction of the measured FMA peak) to
# bench/results/$GEMM_NAME.md.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NAME="${GEMM_NAME:-gemm_xla_vs_ebm}"
ROUNDS="${GEMM_ROUNDS:-3}"
OUT="bench/results/$NAME.jsonl"
PY=bench/.venv/bin/python
[[ -x "$PY" ]] || bash bench/setup_venv.sh || exit 1
cargo build --release -q -p ebm-core --example gemm_rate || exit 1
: > "$OUT"
# M,K,N,ta,tb: the products of one row block of a training step at one and two threads (M2: 512
# or 1024 rows of width 128; M64: 128 or 256 rows of width 256): forward x·W, input gradient
# g·Wᵀ, weight gradient xᵀ·g; then the square products of the width sweep
SHAPES="${GEMM_SHAPES:-512,128,128,0,0 512,128,128,0,1 128,512,128,1,0 1024,128,128,0,0 128,1024,128,1,0
128,256,256,0,0 128,256,256,0,1 256,128,256,1,0 256,256,256,0,0 256,256,256,1,0
512,512,512,0,0 1024,1024,1024,0,0}"
ebm() { taskset -c 0 target/release/examples/gemm_rate $SHAPES; }
xla() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE taskset -c 0 "$PY" bench/python/gemm_xla.py $SHAPES 2>/dev/null; }
tag() { "$PY" -c 'import json,sys
for raw in sys.stdin:
    if raw.startswith("{"):
        d = json.loads(raw); d["round"] = int(sys.argv[1]); print(json.dumps(d))' "$1"; }
for r in $(seq 1 "$ROUNDS"); do
    echo "[gemm] round $r of $ROUNDS" >&2
    if (( r % 2 )); then ebm | tag "$r" >> "$OUT"; xla | tag "$r" >> "$OUT"
    else xla | tag "$r" >> "$OUT"; ebm | tag "$r" >> "$OUT"; fi
done
{
    echo "# bench/gemm.sh $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -o 'avx512f\|avx2\|fma' | sort -u | xargs)"
    echo
    "$PY" bench/python/gemm_table.py "$OUT"
} | tee "bench/results/$NAME.md"
