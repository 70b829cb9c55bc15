# Realtime gateway node image.
#
#   docker build -t realtime-gateway .
#   docker run --rm -p 9001:9001 -e JWT_SECRET=... -e PUBLISH_KEY=... \
#     -e REDIS_URL=redis://host:6379 -e CLOCK_ENABLED=false realtime-gateway
#
# Debian (glibc) on purpose, not Alpine: uWebSockets.js (npm alias of
# @trufflesuite/uws-js-unofficial) ships prebuilt native binaries for Node 20 on glibc
# linux-x64 / linux-arm64 only; there is no musl build. Node stays on 20 because that
# package has no Node 22 binary (package.json pins engines.node 20.x).
#
# No compiler toolchain is installed: the only packages with install scripts are the
# optional bufferutil / utf-8-validate (pulled in by ws), which load prebuilt binaries
# through node-gyp-build; if they could not, npm skips them and ws falls back to JS.
#
# The build context is trimmed by an allowlist in .dockerignore.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------
# build: full dependency tree + TypeScript compile -> /app/dist
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Manifests first so the dependency layer is cached until they change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Everything tsconfig.json includes (gateway/src, shared/src, scripts, loadtest). A plain
# `COPY . .` rather than one COPY per folder: loadtest/ may not exist (git keeps no empty
# folders) and a COPY of a missing path fails the build. .dockerignore decides what lands.
COPY . .
RUN npx tsc -p tsconfig.json \
 && test -f dist/gateway/src/main.js \
 && node dist/scripts/build-web.js

# ---------------------------------------------------------------------------------------
# deps: production node_modules only, installed clean from the lockfile (no dev
# packages, no TypeScript). Separate stage so it builds in parallel with `build`.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force
# uWebSockets.js carries ~110 MB of binaries for every OS / CPU / Node ABI. Keep only the
# one this image's Node loads (binaries/uws_<platform>_<arch>_<abi>.node; the same base
# image runs the runtime stage), drop the unused copies under dist/, then fail the build
# if the native binary does not load (the package would silently fall back to a slow
# pure-JS implementation, which the gateway refuses at start-up anyway).
RUN node -e ' \
      const fs = require("node:fs"), path = require("node:path"); \
      const dir = "node_modules/uWebSockets.js"; \
      const keep = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`; \
      if (!fs.existsSync(path.join(dir, "binaries", keep))) { console.error("no uWS binary " + keep); process.exit(1); } \
      for (const sub of ["binaries", "dist"]) \
        for (const f of fs.readdirSync(path.join(dir, sub))) \
          if (f.endsWith(".node") && !(sub === "binaries" && f === keep)) fs.rmSync(path.join(dir, sub, f)); \
      console.log("kept " + keep);' \
 && node -e 'if (typeof require("uWebSockets.js").H3App !== "function") { console.error("uWS native binary not loaded"); process.exit(1); }'

# ---------------------------------------------------------------------------------------
# runtime
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=9001
WORKDIR /app
# Owned by root and only readable by the `node` user: the process cannot modify its own code.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/gateway ./dist/gateway
COPY --from=build /app/dist/shared ./dist/shared
# The live page and browser SDK served at / and /sdk.js.
COPY --from=build /app/dist/web ./dist/web
COPY package.json ./
# The HTTP contract, served at GET /v1/openapi.yaml.
COPY docs/openapi.yaml ./docs/openapi.yaml

USER node
EXPOSE 9001

# Liveness only (/healthz answers 200 while the process runs). Readiness (/readyz: Redis
# reachable, not draining) is for the load balancer / orchestrator; docker-compose.yml
# overrides this check with /readyz so `depends_on: service_healthy` means "ready".
# No curl in the slim image: use Node's own fetch. Assumes the node listens on 127.0.0.1
# too, i.e. HOST is 0.0.0.0 (the default) or 127.0.0.1.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 9001) + '/healthz', { signal: AbortSignal.timeout(3000) }).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]

# SIGTERM: the node turns not-ready, stops listening, closes its sockets with 1012 spread
# over DRAIN_WINDOW_MS (default 10 s) and exits 0. Give it longer than that before SIGKILL
# (docker stop -t 30 / compose stop_grace_period: 30s).
STOPSIGNAL SIGTERM
CMD ["node", "dist/gateway/src/main.js"]
