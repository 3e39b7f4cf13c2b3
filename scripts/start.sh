#!/usr/bin/env bash
# `npm start`: the whole stack on embedded defaults. Installs what is missing from the lock files
# (scripts/bootstrap.sh: npm ci, uv sync), then runs scripts/start-stack.ts: the Node API on 127.0.0.1:$PORT
# (default 8787) with all state in $DATA_DIR (default ./.data), the first API key (printed once), the bundled tiny
# model, and a local CPU worker. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec node --import tsx scripts/start-stack.ts
