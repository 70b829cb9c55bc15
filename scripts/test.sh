#!/usr/bin/env bash
# npm test: installs what is missing (Debian services, npm packages), builds, and runs the
# whole suite. Every test starts its own Redis/NGINX/gateway processes on free ports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/ensure-system.sh prometheus chromium
bash scripts/ensure-deps.sh
exec ./node_modules/.bin/vitest run "$@"
