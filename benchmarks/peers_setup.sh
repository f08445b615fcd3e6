#!/usr/bin/env bash
# Create .venv-peers: the peer libraries the benchmark compares against, kept apart from the
# dev environment (their pins would fight batchframe's). Safe to re-run.
#   bash benchmarks/peers_setup.sh            # uses python3.11+ on PATH
#   PYTHON=/path/to/python bash benchmarks/peers_setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
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
