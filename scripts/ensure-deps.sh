#!/usr/bin/env bash
# Node dependencies and a fresh build in dist/. npm ci only when the lockfile changed since
# the last install (npm writes node_modules/.package-lock.json on install); the TypeScript
# build always runs: it takes a few seconds and a stale dist/ is a worse failure mode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -d node_modules || ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "ensure-deps: npm ci" >&2
  npm ci --no-audit --no-fund
fi

echo "ensure-deps: tsc -p tsconfig.json" >&2
./node_modules/.bin/tsc -p tsconfig.json
# The live page and the browser SDK bundle the nodes serve at / and /sdk.js.
echo "ensure-deps: build web" >&2
node dist/scripts/build-web.js
