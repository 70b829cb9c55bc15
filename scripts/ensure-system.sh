#!/usr/bin/env bash
# Installs, from Debian's archive, the system services the local cluster runs without Docker,
# but only those that are missing, so repeated runs cost nothing and need no network.
#   bash scripts/ensure-system.sh              # redis-server, redis-cli, redis-sentinel, nginx, postgresql
#   bash scripts/ensure-system.sh prometheus   # ... and prometheus (with promtool) and the
#                                              # Redis and Postgres exporters
#   bash scripts/ensure-system.sh chromium     # ... and chromium, for the browser tests only
#   bash scripts/ensure-system.sh compose      # ... and docker-compose (v1), which only checks
#                                              # docker-compose.yml in the tests; no engine needed
#   bash scripts/ensure-system.sh screenshots  # ... and pngquant, which squeezes the README's
#                                              # screenshots (npm run screenshots) only
set -euo pipefail

want_prometheus=0
want_chromium=0
want_compose=0
want_screenshots=0
for arg in "$@"; do
  [[ "$arg" == "prometheus" ]] && want_prometheus=1
  [[ "$arg" == "chromium" ]] && want_chromium=1
  [[ "$arg" == "compose" ]] && want_compose=1
  [[ "$arg" == "screenshots" ]] && want_screenshots=1
done

has() { command -v "$1" >/dev/null 2>&1; }

missing=()
has redis-server || missing+=(redis-server)
# The Sentinel and Cluster tests: redis-cli creates the cluster, redis-sentinel watches the master.
has redis-cli || missing+=(redis-tools)
has redis-sentinel || missing+=(redis-sentinel)
# nginx lives in /usr/sbin, which a non-root PATH may lack.
has nginx || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
# The server binaries are not on PATH on Debian; any major version will do.
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
if (( want_prometheus )); then
  { has prometheus && has promtool; } || missing+=(prometheus)
  has prometheus-redis-exporter || missing+=(prometheus-redis-exporter)
  has prometheus-postgres-exporter || missing+=(prometheus-postgres-exporter)
fi

# Headless browser for gateway/test/browser.test.ts; playwright-core drives it, nothing is downloaded.
if (( want_chromium )); then
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
fi

# deploy/test/docker-compose.test.ts resolves the compose file with it (`config`, no daemon).
if (( want_compose )); then
  has docker-compose || missing+=(docker-compose)
fi

# gateway/test/browser.test.ts with UPDATE_SCREENSHOT=1 writes docs/screen-*.png through it.
if (( want_screenshots )); then
  has pngquant || missing+=(pngquant)
fi

if (( ${#missing[@]} == 0 )); then
  exit 0
fi

if [[ "$(id -u)" == "0" ]]; then
  as_root=()
elif has sudo; then
  as_root=(sudo)
else
  echo "ensure-system: missing system packages: ${missing[*]}" >&2
  echo "ensure-system: not root and sudo is not available; install them with:" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "ensure-system: installing ${missing[*]}" >&2
# One index refresh, only now that something has to be installed.
"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
echo "ensure-system: installed ${missing[*]}" >&2
