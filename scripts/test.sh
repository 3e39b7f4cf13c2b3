#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs from the lock files, then type-checks, checks that
# openapi/openapi.json is fresh, runs the Node tests (real SQLite), the Workers tests (real workerd, D1, R2), the
# Worker build (wrangler deploy --dry-run), the Python gpu-worker tests (real PyTorch, Triton interpreter), and the
# schemathesis fuzzer against the Node server.  Usage: npm test
set -euo pipefail
cd "$(dirname "$0")/.."
export CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false CI="${CI:-1}"
bash scripts/bootstrap.sh
step() { printf '\n== %s\n' "$*"; }
step typecheck;            npm run -s typecheck
step "openapi is fresh";   npm run -s openapi:check
step "node tests";         npx vitest run
step "workers tests";      npx vitest run --config vitest.workers.config.ts
step "worker build";       npx wrangler deploy --dry-run --outdir dist/worker >/dev/null
step "gpu-worker tests";   (cd gpu-worker && TRITON_INTERPRET=1 .venv/bin/python -m pytest)
step "python sdk tests";   PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 gpu-worker/.venv/bin/python -m pytest sdk/python/tests -q -p no:cacheprovider
step "sdk + cli types";    npx tsc -p sdk/typescript
step "api fuzzer";         gpu-worker/.venv/bin/python -m pytest tests/fuzz
step "all tests passed"
