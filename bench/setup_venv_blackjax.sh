#!/usr/bin/env bash
# Create bench/.venv-blackjax with BlackJAX 1.7.1 and JAX on CPU (bench/python/requirements-blackjax.txt).
#
#   bash bench/setup_venv_blackjax.sh            # create if missing
#   bash bench/setup_venv_blackjax.sh --force    # recreate
#
# Needs python3 (3.11; override with PYTHON=...) with the venv module, and PyPI. Separate from
# bench/.venv (setup_venv.sh), which carries PyTorch: the sampler benchmark needs JAX only.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$BENCH_DIR/.venv-blackjax"
PYTHON="${PYTHON:-python3}"
REQ="$BENCH_DIR/python/requirements-blackjax.txt"

if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$VENV"
fi
if [[ -x "$VENV/bin/python" && -f "$VENV/.complete" ]]; then
    echo "setup_venv_blackjax: $VENV already exists (use --force to recreate)"
    exit 0
fi
start=$(date +%s)
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --no-cache-dir --disable-pip-version-check --no-deps -r "$REQ"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$VENV/bin/python" - <<'PY'
import blackjax, jax, numpy, optax
print(f"setup_venv_blackjax: blackjax {blackjax.__version__}, jax {jax.__version__}, "
      f"optax {optax.__version__}, numpy {numpy.__version__}")
PY
touch "$VENV/.complete"
echo "setup_venv_blackjax: done in $(( $(date +%s) - start )) s; size $(du -sh "$VENV" | cut -f1)"
