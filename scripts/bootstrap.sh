#!/usr/bin/env bash
# Installs everything the project needs from its own lock files: npm packages (package-lock.json) and the
# gpu-worker Python environment (gpu-worker/uv.lock -> gpu-worker/.venv). Idempotent; quick when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet "uv==0.9.30"
fi
(cd gpu-worker && uv sync --frozen --quiet)
