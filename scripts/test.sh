#!/usr/bin/env bash
# npm test: installs what is missing (Debian services, npm packages), builds, and runs the
# whole suite. Every test starts its own Redis/NGINX/gateway processes on free ports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/ensure-system.sh prometheus chromium compose
bash scripts/ensure-deps.sh
# Static checks first: they fail in seconds where the suite takes minutes.
echo "test: typecheck (sources, tests, live page)" >&2
npm run -s typecheck
echo "test: lint" >&2
npm run -s lint
# Files named on the command line run as asked; the whole suite runs in two
# phases, the latency comparisons alone at the end (see vitest.config.ts).
if [ "$#" -gt 0 ]; then
  exec ./node_modules/.bin/vitest run "$@"
fi
TEST_PHASE=parallel ./node_modules/.bin/vitest run
echo "test: latency comparisons, one file at a time" >&2
TEST_PHASE=quiet exec ./node_modules/.bin/vitest run
