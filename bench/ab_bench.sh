#!/usr/bin/env bash
# A/B regression check (issue 13): the bench binary from before the restructure (a9fba20) and
# the current one, cell by cell, alternately, 1 thread, pinned to CPU 0, so both meet the same
# background load. Table: python3 bench/python/ab_table.py bench/results/ab_restructure.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
# OLD: `git worktree add /tmp/old a9fba20 && (cd /tmp/old && cargo build --release -p ebm-bench)`
OLD=${OLD:-/tmp/old/target/release/ebm-bench}
NEW=${NEW:-target/release/ebm-bench}
OUT=${OUT:-bench/results/ab_restructure.jsonl}
: > "$OUT"
CELLS="dsm:M2 dsm:M64 ssm:M2 ssm:M64 esm:M2 esm:M64 nce:M2 nce:M64 pcd:M2 pcd:M64 langevin:M2"
for rep in ${REPS:-1 2 3}; do
  for c in $CELLS; do
    w=${c%%:*}; m=${c##*:}
    steps=50; warm=5
    if [[ $c == esm:M64 || $c == langevin:M2 ]]; then steps=30; warm=2; fi
    for side in old new; do
      bin=$OLD; [[ $side == new ]] && bin=$NEW
      line=$(nice -n -10 taskset -c 0 "$bin" --workload $w --model $m --threads 1 --steps $steps --warmup $warm 2>/dev/null | tail -1)
      echo "{\"side\":\"$side\",\"rep\":$rep,\"load\":\"$(cut -d' ' -f1 /proc/loadavg)\",\"r\":$line}" >> "$OUT"
    done
  done
done
