#!/usr/bin/env bash
# Create bench/.venv with the pinned reference frameworks (JAX and PyTorch on CPU).
#
#   bash bench/setup_venv.sh            # create if missing
#   bash bench/setup_venv.sh --force    # recreate
#
# Needs python3 (3.11; override with PYTHON=...) with the venv module, and PyPI. Installs about
# 4.6 GB (mostly the CUDA libraries that PyTorch's PyPI wheel needs even on CPU; see
# bench/python/requirements.txt). Took 56-90 s here (90 s while other jobs ran).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$BENCH_DIR/.venv"
PYTHON="${PYTHON:-python3}"
REQ="$BENCH_DIR/python/requirements.txt"

if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$VENV"
fi
if [[ -x "$VENV/bin/python" && -f "$VENV/.complete" ]]; then
    echo "setup_venv: $VENV already exists (use --force to recreate)"
    exit 0
fi

start=$(date +%s)
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
# --no-deps: requirements.txt is a complete lock file (it leaves out triton and other GPU-only
# packages on purpose, which a resolving install would pull in).
"$VENV/bin/pip" install --no-cache-dir --disable-pip-version-check --no-deps -r "$REQ"
# Smoke test: both frameworks import on this machine.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$VENV/bin/python" - <<'PY'
import jax, numpy, safetensors, threadpoolctl, torch
print(f"setup_venv: jax {jax.__version__}, torch {torch.__version__}, numpy {numpy.__version__}")
PY
touch "$VENV/.complete"
end=$(date +%s)
echo "setup_venv: done in $((end - start)) s; size $(du -sh "$VENV" | cut -f1)"
