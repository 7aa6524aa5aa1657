#!/usr/bin/env bash
# Sampler benchmark (issue 17): ebm's NUTS and ChEES-HMC vs BlackJAX 1.7.1's, CPU, 1 thread.
#
#   bash bench/samplers.sh
#
# Creates bench/.venv-blackjax if missing (bench/setup_venv_blackjax.sh), builds
# `cargo build --release -p ebm-bench --bin samplers`, writes the Gaussian target for the Python
# side (bench/results/samplers_gaussian.json), then runs BENCH_ROUNDS rounds; each round runs every
# (target, sampler) cell as ebm then BlackJAX, BENCH_REPEATS timed runs per process, so the two
# frameworks alternate through the run and meet the same background load. Each process is pinned to
# CPU 0 with one thread (RAYON_NUM_THREADS=1; XLA_FLAGS without Eigen's thread pool; OMP/MKL 1).
# JSON lines go to bench/results/samplers.jsonl, each with "others_cpu" (CPUs other processes kept
# busy meanwhile), and the table of medians (bench/python/samplers_table.py) to
# bench/results/samplers.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RESULTS="$ROOT/bench/results"
OUT="$RESULTS/samplers.jsonl"
PY="$ROOT/bench/.venv-blackjax/bin/python"
ROUNDS="${BENCH_ROUNDS:-2}"
REPEATS="${BENCH_REPEATS:-3}"
CELLS="${BENCH_CELLS:-gauss:nuts gauss:chees mlp:nuts mlp:chees}"

log() { echo "samplers.sh: $*" >&2; }
[[ -x "$PY" && -f "$ROOT/bench/.venv-blackjax/.complete" ]] || bash "$ROOT/bench/setup_venv_blackjax.sh"
cargo build --release -q -p ebm-bench --bin samplers
EBM="$ROOT/target/release/samplers"
"$EBM" --dump-gaussian "$RESULTS/samplers_gaussian.json"

# CPU seconds used so far by all processes (/proc/stat)
busy_s() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.2f", ($2+$3+$4+$7+$8)/hz}' /proc/stat; }

# run_pinned CMD...: JSON lines of CMD with "others_cpu" added (its own CPU time, from
# /proc/self-style accounting of `times`, is subtracted from the machine's busy time)
run_pinned() {
    local tmp b0 b1 w0 w1 c0 c1
    tmp="$(mktemp)"
    b0=$(busy_s); w0=$(date +%s.%N); c0=$(times | tail -n 1 | awk '{gsub(/s/,""); split($1,u,"m"); split($2,s,"m"); print u[1]*60+u[2]+s[1]*60+s[2]}')
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        taskset -c 0 "$@" > "$tmp"
    b1=$(busy_s); w1=$(date +%s.%N); c1=$(times | tail -n 1 | awk '{gsub(/s/,""); split($1,u,"m"); split($2,s,"m"); print u[1]*60+u[2]+s[1]*60+s[2]}')
    local others
    others=$(awk -v b0="$b0" -v b1="$b1" -v c0="$c0" -v c1="$c1" -v w0="$w0" -v w1="$w1" \
        'BEGIN { x = ((b1 - b0) - (c1 - c0)) / (w1 - w0); if (x < 0) x = 0; printf "%.2f", x }')
    sed "s/}\$/, \"others_cpu\": $others}/" "$tmp" | tee -a "$OUT" >&2
    rm -f "$tmp"
}

: > "$OUT"
for round in $(seq 1 "$ROUNDS"); do
    for cell in $CELLS; do
        t="${cell%%:*}" s="${cell##*:}"
        log "round $round: $t $s (load $(cut -d' ' -f1 /proc/loadavg))"
        run_pinned "$EBM" --target "$t" --sampler "$s" --repeats "$REPEATS" --seed "$round"
        run_pinned "$PY" bench/python/bench_blackjax.py --target "$t" --sampler "$s" \
            --repeats "$REPEATS" --seed "$round"
    done
done
"$PY" bench/python/samplers_table.py "$OUT" | tee "$RESULTS/samplers.md"
