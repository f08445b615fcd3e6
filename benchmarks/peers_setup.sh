#!/usr/bin/env bash
# Create .venv-peers: the peer libraries the benchmark compares against, kept apart from the
# dev environment (their pins would fight batchframe's). Safe to re-run.
#   bash benchmarks/peers_setup.sh            # the first Python >= 3.12 it finds
#   PYTHON=/path/to/python3.12 bash benchmarks/peers_setup.sh
# batchata needs Python >= 3.12 (bespokelabs-curator runs on it too), so the peers get their
# own interpreter even when batchframe's dev venv is on 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  candidates="python3.12 python3.13 python3.14 python3"
  if command -v pyenv >/dev/null 2>&1; then  # pyenv's shims only answer for its global version
    candidates="$candidates $(ls -d "$(pyenv root)"/versions/3.1[2-9]*/bin/python3 2>/dev/null || true)"
  fi
  for candidate in $candidates; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      PY="$candidate"
      break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "peers_setup: no Python >= 3.12 found (batchata needs it); set PYTHON=..." >&2
  exit 1
fi
VENV="${PEERS_VENV:-.venv-peers}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# psutil for peak memory; pandas/pyarrow so the peers' jobs start from the same frame.
"$VENV/bin/python" -m pip install --quiet psutil pandas pyarrow tiktoken
# Each peer separately: one that fails to install must not take the other down.
for peer in bespokelabs-curator batchata; do
  if ! "$VENV/bin/python" -m pip install --quiet "$peer"; then
    echo "peers_setup: could not install $peer (see the pip output above)" >&2
  fi
done
"$VENV/bin/python" -m pip list 2>/dev/null | grep -i -E '^(bespokelabs-curator|batchata|openai|anthropic|litellm) ' || true
