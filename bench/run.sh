#!/usr/bin/env bash
# Benchmark driver (issue 8): ebm vs JAX (jit) vs PyTorch (eager, torch.compile) on CPU.
#
#   bash bench/run.sh
#
# From a fresh clone this creates bench/.venv first (bench/setup_venv.sh, ~1-2 min, ~4.6 GB).
# For threads in 1 and 2 and every (workload, model) it runs, each in its own process pinned with
# taskset (1 thread: CPU 0; 2 threads: CPUs 0,1):
#   ebm:   cargo run --release -p ebm-bench -- --workload W --model M --threads T --steps S --warmup U
#   JAX:   bench/python/bench_jax.py   (same arguments)
#   torch: bench/python/bench_torch.py (same arguments; eager and torch.compile)
# Every JSON line goes to bench/results/latest.jsonl, versions/BLAS/threads to
# bench/results/latest_env.txt, and the Markdown table (bench/python/table.py) to stdout and
# bench/results/latest.md. If ebm-bench does not build, ebm's cells are "n/a" and the run goes on.
#
# Knobs (environment):
#   BENCH_THREADS="1 2"          thread counts
#   BENCH_FRAMEWORKS="ebm jax torch"
#   BENCH_CELLS="dsm:M2 ..."     (workload:model) pairs; default: all 11 MLP cells (the conv
#                                cells of issue 14: "dsm:C8 pcd:C8 dsm:R28"; bench/src/spec.rs).
#                                With a conv cell the run also checks that the three frameworks'
#                                conv energies agree (bench/python/conv_check.py) and times conv2d
#                                against its im2col GEMM at each thread count (convgemm)
#   BENCH_STEPS=50 BENCH_WARMUP=5            timed / untimed steps (fast workloads)
#   BENCH_STEPS_SLOW=30 BENCH_WARMUP_SLOW=2  for esm:M64, langevin, pcd:C8 and R28 (~0.1-2 s
#                                per step), and
#                                every cell when BENCH_ALL_SLOW=1 (the sweeps)
#   BENCH_TIMEOUT=900            seconds per process
#   BENCH_ROUNDS=1               rounds: each runs every cell of every framework once (odd rounds
#                                ebm first, even rounds the Python side first), and the table
#                                compares medians; its ratios are the median of the per-round
#                                ratios, each of two runs side by side, so drift of the host's
#                                speed between cells cancels (bench/python/table.py)
#   BENCH_APPEND=1               append to latest.jsonl instead of starting it afresh (re-run some
#                                cells; the table keeps the lines of the last run of each cell)
#   BENCH_WAIT_QUIET=0           before each run, wait up to this many seconds for the machine to
#                                be idle (other processes using < 0.2 CPU over 2 s); 0: don't wait
#   BENCH_NAME=latest            results go to bench/results/$BENCH_NAME.{jsonl,md} and _env.txt
#   BENCH_TORCH_MODES="eager compile"   PyTorch modes to run (sweeps: eager)
#   BENCH_FIRST_CPU=0            pin to CPUs from this one (1: a second driver beside a first)
#   BENCH_NICE=-10               scheduling priority of the benchmark processes when run as root
#                                (the machine is shared; "" to leave it alone)
#
# The Python runs get OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from their environment (this
# machine sets them for old OpenBLAS builds, and they slow numpy's kernels); nothing else changes.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH="$ROOT/bench"
RESULTS="$BENCH/results"
NAME="${BENCH_NAME:-latest}"
OUT="$RESULTS/$NAME.jsonl"
ENVF="$RESULTS/${NAME}_env.txt"
TORCH_MODES="${BENCH_TORCH_MODES:-eager compile}"
PY="$BENCH/.venv/bin/python"

THREADS="${BENCH_THREADS:-1 2}"
FRAMEWORKS="${BENCH_FRAMEWORKS:-ebm jax torch}"
CELLS="${BENCH_CELLS:-dsm:M2 esm:M2 ssm:M2 nce:M2 pcd:M2 langevin:M2 dsm:M64 esm:M64 ssm:M64 nce:M64 pcd:M64}"
STEPS="${BENCH_STEPS:-50}"
WARMUP="${BENCH_WARMUP:-5}"
STEPS_SLOW="${BENCH_STEPS_SLOW:-30}"
WARMUP_SLOW="${BENCH_WARMUP_SLOW:-2}"
TIMEOUT="${BENCH_TIMEOUT:-900}"
ROUNDS="${BENCH_ROUNDS:-1}"
# every line of this invocation carries its id and round: the table keeps, per cell, the lines of
# the last invocation that ran it (BENCH_APPEND re-runs replace a cell's earlier lines)
RUN_ID="$(date -u +%Y%m%dT%H%M%S)-$$"
ROUND=1
NICE="${BENCH_NICE--10}"

log() { echo "[bench] $*" >&2; }

if [[ ! -x "$PY" || ! -f "$BENCH/.venv/.complete" ]]; then
    log "creating bench/.venv"
    bash "$BENCH/setup_venv.sh" || { log "setup_venv.sh failed"; exit 1; }
fi

PRIO=()
if [[ -n "$NICE" && "$(id -u)" == 0 ]]; then
    PRIO=(nice -n "$NICE")
fi
# Python runs: without the OpenBLAS overrides (numpy then picks its best kernel).
PYENV=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONWARNINGS=ignore)

mkdir -p "$RESULTS"
[[ "${BENCH_APPEND:-0}" == 1 ]] || : > "$ENVF"
[[ "${BENCH_APPEND:-0}" == 1 ]] || : > "$OUT"
{
    echo "# bench/run.sh $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "# $(uname -srm); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); nproc $(nproc)"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# threads: $THREADS; steps $STEPS/$WARMUP (slow cells $STEPS_SLOW/$WARMUP_SLOW); rounds $ROUNDS; priority: ${PRIO[*]:-default}"
} >> "$ENVF"

# error_json FRAMEWORK WORKLOAD MODEL THREADS MESSAGE: a result line for a run that printed none.
error_json() {
    "$PY" -c 'import json,sys; f,w,m,t,e=sys.argv[1:]; print(json.dumps({"framework":f,"workload":w,"model":m,"threads":int(t),"median_step_s":None,"steps_per_s":None,"timed_steps":0,"error":e}))' "$@"
}

# CPU seconds used so far by all processes (from /proc/stat) and by this shell's children.
busy_s() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.2f", ($2+$3+$4+$7+$8)/hz}' /proc/stat; }
# (`times` must run in this shell, not in a $(...) subshell, to see this shell's children.)
children_s() { times > "$1"; tail -n 1 "$1" | awk '{gsub(/s/,""); split($1,u,"m"); split($2,s,"m"); printf "%.2f", u[1]*60+u[2]+s[1]*60+s[2]}'; }

WAIT_QUIET="${BENCH_WAIT_QUIET:-0}"
# wait_quiet: wait (at most WAIT_QUIET s) until other processes keep < 0.2 CPU busy over 2 s.
wait_quiet() {
    [[ "$WAIT_QUIET" -gt 0 ]] || return 0
    local start=$SECONDS b0 b1 busy
    while :; do
        b0=$(busy_s); sleep 2; b1=$(busy_s)
        busy=$(awk -v a="$b0" -v b="$b1" 'BEGIN { printf "%.2f", (b - a) / 2 }')
        awk -v x="$busy" 'BEGIN { exit !(x < 0.2) }' && return 0
        if (( SECONDS - start >= WAIT_QUIET )); then
            log "machine still busy ($busy CPUs used by others); running anyway"
            return 0
        fi
        sleep 3
    done
}

# run_one FRAMEWORK-LABEL WORKLOAD MODEL THREADS CMD...: run pinned, keep JSON lines from stdout,
# and add "others_cpu": the CPUs (0..2) that other processes kept busy meanwhile, on average. The
# two vCPUs share one core's vector units, so any other load lowers the numbers: check this field.
run_one() {
    local label="$1" w="$2" m="$3" t="$4"
    shift 4
    local first="${BENCH_FIRST_CPU:-0}"
    local cpus="$first"
    [[ "$t" -ge 2 ]] && cpus="$first-$((first + t - 1))"
    local tmp
    tmp="$(mktemp)"
    wait_quiet
    log "$label $w $m threads=$t (load $(cut -d' ' -f1 /proc/loadavg))"
    local b0 c0 w0 b1 c1 w1 others
    b0=$(busy_s); children_s "$tmp.t" > "$tmp.c"; c0=$(cat "$tmp.c"); w0=$(date +%s.%N)
    OMP_NUM_THREADS="$t" MKL_NUM_THREADS="$t" timeout "$TIMEOUT" "${PRIO[@]}" taskset -c "$cpus" "$@" \
        > "$tmp" 2> "$tmp.err"
    local rc=$?
    b1=$(busy_s); children_s "$tmp.t" > "$tmp.c"; c1=$(cat "$tmp.c"); w1=$(date +%s.%N)
    others=$(awk -v b0="$b0" -v b1="$b1" -v c0="$c0" -v c1="$c1" -v w0="$w0" -v w1="$w1" \
        'BEGIN { x = ((b1 - b0) - (c1 - c0)) / (w1 - w0); if (x < 0) x = 0; printf "%.2f", x }')
    if ! grep -q '^{' "$tmp"; then
        local why="exit code $rc"
        [[ $rc == 124 ]] && why="timed out after ${TIMEOUT}s"
        why="$why: $(grep -v '^\s*$' "$tmp.err" | tail -n 1 | cut -c1-200)"
        error_json "$label" "$w" "$m" "$t" "$why" > "$tmp"
    fi
    "$PY" -c 'import json,sys
for raw in open(sys.argv[1]):
    if raw.startswith("{"):
        d = json.loads(raw); d["others_cpu"] = float(sys.argv[2])
        d["run_id"], d["round"] = sys.argv[3], int(sys.argv[4]); print(json.dumps(d))' \
        "$tmp" "$others" "$RUN_ID" "$ROUND" \
        | tee -a "$OUT" >&2
    rm -f "$tmp" "$tmp.err" "$tmp.t" "$tmp.c"
}

has() { [[ " $FRAMEWORKS " == *" $1 "* ]]; }

# --- versions, BLAS and threads of each framework; fixture checks (f64) ----------------------
if has jax || has torch; then
    for t in $THREADS; do
        cpus="0"; [[ "$t" -ge 2 ]] && cpus="0-$((t - 1))"
        has jax && { echo "## JAX, threads=$t"; "${PYENV[@]}" taskset -c "$cpus" "$PY" "$BENCH/python/bench_jax.py" --info --threads "$t" 2>&1; } >> "$ENVF"
        has torch && { echo "## PyTorch, threads=$t"; "${PYENV[@]}" OMP_NUM_THREADS="$t" taskset -c "$cpus" "$PY" "$BENCH/python/bench_torch.py" --info --threads "$t" 2>&1; } >> "$ENVF"
    done
    cat "$ENVF" >&2
    for fw in jax torch; do
        has "$fw" || continue
        log "fixture check: $fw"
        "${PYENV[@]}" "$PY" "$BENCH/python/bench_$fw.py" --check-fixtures 2> >(grep -v -i warn >&2) | tee -a "$OUT" >&2
    done
fi

# --- ebm -------------------------------------------------------------------------------------
EBM_OK=0
if has ebm; then
    log "building ebm-bench (cargo build --release -p ebm-bench)"
    if cargo build --release -q -p ebm-bench >&2; then
        EBM_OK=1
    else
        log "ebm-bench does not build: ebm cells are n/a"
    fi
fi

# conv cells (issue 14): do ebm, JAX and PyTorch compute the same energy? (f64, same weights)
CONV=0
[[ " $CELLS " =~ :(C8|R28)\  ]] && CONV=1
if [[ $CONV == 1 && $EBM_OK == 1 ]] && has jax && has torch; then
    log "conv check: ebm vs JAX vs PyTorch energies, scores and DSM loss (bench/python/conv_check.py)"
    "${PYENV[@]}" "$PY" "$BENCH/python/conv_check.py" --ebm-bench "$ROOT/target/release/ebm-bench" \
        2> >(grep -v -i warn >&2) | tee -a "$OUT" >&2
fi

# --- the benchmark --------------------------------------------------------------------------
# run_python W M T ARGS...: the JAX and PyTorch runs of one cell
run_python() {
    local w="$1" m="$2" t="$3"
    shift 3
    if has jax; then
        local xla=()
        [[ "$t" == 1 ]] && xla=(XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
        run_one jax "$w" "$m" "$t" "${PYENV[@]}" "${xla[@]}" "$PY" "$BENCH/python/bench_jax.py" "$@"
    fi
    if has torch; then
        [[ " $TORCH_MODES " == *" eager "* ]] &&
            run_one torch "$w" "$m" "$t" "${PYENV[@]}" "$PY" "$BENCH/python/bench_torch.py" "$@" --torch-mode eager
        [[ " $TORCH_MODES " == *" compile "* ]] &&
            run_one torch_compile "$w" "$m" "$t" "${PYENV[@]}" "$PY" "$BENCH/python/bench_torch.py" "$@" --torch-mode compile
    fi
}

for ROUND in $(seq 1 "$ROUNDS"); do
    [[ "$ROUNDS" -gt 1 ]] && log "round $ROUND of $ROUNDS"
    for t in $THREADS; do
        for cell in $CELLS; do
            w="${cell%%:*}" m="${cell##*:}"
            s="$STEPS" u="$WARMUP"
            if [[ "$cell" == "esm:M64" || "$w" == "langevin" || "$cell" == "pcd:C8" || "$m" == "R28" ||
                -n "${BENCH_ALL_SLOW:-}" ]]; then
                s="$STEPS_SLOW" u="$WARMUP_SLOW"
            fi
            args=(--workload "$w" --model "$m" --threads "$t" --steps "$s" --warmup "$u")
            # odd rounds ebm first, even rounds the Python side first
            (( ROUND % 2 == 0 )) && run_python "$w" "$m" "$t" "${args[@]}"
            if has ebm && [[ $EBM_OK == 1 ]]; then
                run_one ebm "$w" "$m" "$t" cargo run --release -q -p ebm-bench -- "${args[@]}"
            fi
            (( ROUND % 2 == 1 )) && run_python "$w" "$m" "$t" "${args[@]}"
        done
    done
done

# conv2d against the GEMM of its im2col shape (bench/src/bin/convgemm.rs), with the conv cells
if [[ $CONV == 1 && $EBM_OK == 1 ]] && cargo build --release -q -p ebm-bench --bin convgemm >&2; then
    for t in $THREADS; do
        first="${BENCH_FIRST_CPU:-0}" cpus="${BENCH_FIRST_CPU:-0}"
        [[ "$t" -ge 2 ]] && cpus="$first-$((first + t - 1))"
        wait_quiet
        log "convgemm threads=$t"
        "${PRIO[@]}" taskset -c "$cpus" "$ROOT/target/release/convgemm" --threads "$t" | tee -a "$OUT" >&2
    done
fi

echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$ENVF"
"$PY" "$BENCH/python/table.py" "$OUT" | tee "$RESULTS/$NAME.md"
echo
echo "Results: $OUT; environment: $ENVF; table: $RESULTS/$NAME.md"
