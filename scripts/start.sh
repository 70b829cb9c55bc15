#!/usr/bin/env bash
# npm start: the whole cluster (Postgres, Redis, 3 gateway nodes, NGINX, Prometheus) without Docker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/ensure-system.sh prometheus
bash scripts/ensure-deps.sh
# exec: signals from the terminal or a supervisor go straight to the orchestrator.
exec node dist/scripts/start.js
