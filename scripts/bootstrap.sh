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
# Debian's Chromium drives the dashboard's browser test (tests/sdk/dashboard-browser.test.ts); never a downloaded
# browser. Without root/apt (a developer laptop) the test says it skips.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "bootstrap: could not install chromium; the dashboard browser test will skip" >&2
fi
