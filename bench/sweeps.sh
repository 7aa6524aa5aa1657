#!/usr/bin/env bash
# The cost curves of issue 18 (item 2) and the torchebm shapes (item 3), ebm vs JAX (jit) vs
# PyTorch eager, each point one bench/run.sh cell (model specs: bench/src/spec.rs), then the
# log-log plots (bench/python/sweep_plot.py):
#
#   bash bench/sweeps.sh                 # all sweeps and the torchebm cells
#   SWEEPS="width batch" bash bench/sweeps.sh
#
# Sweeps: width (DSM, SSM; MLP 2-W-W-1 at batch 1024, W = 128..1024), batch (DSM, SSM; width
# 256, B = 256..8192), chains (Langevin chain-steps/s, 10^3..10^5 chains of the M2-shaped model,
# 10^6 too with SWEEP_MILLION=1 (~1 s per step per framework); 10^5 chain-steps per timed step), dim (exact SM, D = 2..128, width 128, batch 128);
# torchebm (the published shapes, Langevin on the analytic double well among them, at 1 and 2
# threads). Results: bench/results/sweep_<name>.jsonl
# and .md, plots bench/results/sweep_<name>.png; SWEEP_SUFFIX=_x names them sweep_<name>_x.* (a
# second machine's curves beside the first's). Knobs of bench/run.sh apply (BENCH_THREADS,
# BENCH_STEPS_SLOW, EBM_GEMM, ...).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SWEEPS="${SWEEPS:-width batch chains dim torchebm}"
for s in $SWEEPS; do
    threads=1
    case "$s" in
        width) cells="" ; for w in 128 256 512 1024; do cells+=" dsm:d2w${w}b1024 ssm:d2w${w}b1024"; done ;;
        batch) cells="" ; for b in 256 512 1024 2048 4096 8192; do cells+=" dsm:d2w256b${b} ssm:d2w256b${b}"; done ;;
        chains) cells="langevin:d2w128b1c1000s100 langevin:d2w128b1c10000s10 langevin:d2w128b1c100000s1"
            [[ -n "${SWEEP_MILLION:-}" ]] && cells+=" langevin:d2w128b1c1000000s1" ;;
        dim) cells="" ; for d in 2 8 32 128; do cells+=" esm:d${d}w128b128"; done ;;
        torchebm) cells="dsm:d128w128b1024 ssm:d128w128b1024p5 pcd:d128w128b1024k10 esm:d16w128b128 langevin:dw128c1024s100"; threads="1 2" ;;
        *) echo "unknown sweep $s" >&2; exit 2 ;;
    esac
    name="sweep_$s${SWEEP_SUFFIX:-}"
    BENCH_NAME="$name" BENCH_CELLS="$cells" BENCH_THREADS="${BENCH_THREADS:-$threads}" \
        BENCH_TORCH_MODES=eager BENCH_ALL_SLOW=1 bash bench/run.sh > /dev/null
    [[ "$s" == torchebm ]] || python3 bench/python/sweep_plot.py "$s" "bench/results/$name.jsonl" \
        "bench/results/$name.png"
done
