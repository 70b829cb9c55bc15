// npm start: Postgres, Redis, three gateway nodes and NGINX in front, plus Prometheus and
// the Redis/Postgres exporters, all as local processes (no Docker). Ctrl-C stops
// everything in dependency order.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { DEV_JWT_SECRET, DEV_PUBLISH_KEY } from "./lib/dev-defaults.js";
import { startGatewayProcess } from "./lib/gateway.js";
import { startNginx, type NginxHandle } from "./lib/nginx.js";
import { repoRoot } from "./lib/paths.js";
import { isPortFree, preferredOrFreePort } from "./lib/ports.js";
import { startPostgres, type PostgresHandle } from "./lib/postgres.js";
import { liveProcesses, type ManagedProcess } from "./lib/process.js";
import {
  repoRuleFiles,
  startPostgresExporter,
  startPrometheus,
  startRedisExporter,
  type ExporterHandle,
  type PrometheusHandle,
} from "./lib/prometheus.js";
import { startRedis, type RedisHandle } from "./lib/redis.js";

const NODES = [
  { name: "node-1", port: 9001 },
  { name: "node-2", port: 9002 },
  { name: "node-3", port: 9003 },
] as const;

const log = (message: string): void => {
  process.stdout.write(`[start] ${message}\n`);
};
const loud = (message: string): void => {
  process.stderr.write(`\n[start] !!! ${message}\n\n`);
};

function envPort(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${name} must be a port number, got "${raw}"`);
  return port;
}

interface Cluster {
  postgres?: PostgresHandle;
  redis?: RedisHandle;
  gateways: ManagedProcess[];
  nginx?: NginxHandle;
  exporters: ExporterHandle[];
  prometheus?: PrometheusHandle;
}

const cluster: Cluster = { gateways: [], exporters: [] };
let shuttingDown = false;

async function shutdown(exitCode: number): Promise<never> {
  if (shuttingDown) return process.exit(exitCode);
  shuttingDown = true;
  log("stopping: prometheus, exporters, gateways (draining), nginx, redis, postgres ...");
  // Monitoring first: it only watches, and would otherwise record the drain as an outage.
  await cluster.prometheus?.stop();
  await Promise.all(cluster.exporters.map((e) => e.stop()));
  // Gateways first and with SIGTERM so they drain their sockets while Redis/Postgres are
  // still there; their drain window is 10 s by default, hence the longer bound.
  await Promise.all(cluster.gateways.map((g) => g.stop("SIGTERM", 20_000)));
  await cluster.nginx?.stop();
  await cluster.redis?.stop();
  await cluster.postgres?.stop();
  // Anything started but not yet recorded in `cluster` (interrupted start-up).
  for (const proc of liveProcesses().reverse()) await proc.stop("SIGTERM", 5000);
  log("all stopped");
  process.exit(exitCode);
}

function watch(proc: ManagedProcess, essential: boolean): void {
  void proc.exited.then((info) => {
    if (shuttingDown) return;
    const how = info.signal ? `signal ${info.signal}` : `code ${String(info.code)}`;
    if (essential) {
      loud(`${proc.name} died (${how}); the cluster cannot work without it. Stopping everything.`);
      void shutdown(1);
    } else {
      loud(`${proc.name} (pid ${proc.pid}) died unexpectedly (${how}); the rest keeps running. Last output:\n${proc.output().slice(-2000)}`);
    }
  });
}

async function main(): Promise<void> {
  const root = repoRoot();
  const nginxPort = envPort("NGINX_PORT", 8080);

  // Fixed ports are part of the documented interface (clients, curl examples): refuse to
  // start rather than silently moving them.
  const fixed = [...NODES.map((n) => ({ what: n.name, port: n.port })), { what: "nginx", port: nginxPort }];
  const taken: string[] = [];
  for (const { what, port } of fixed) if (!(await isPortFree(port))) taken.push(`${port} (${what})`);
  if (taken.length > 0) {
    throw new Error(`port(s) already in use: ${taken.join(", ")}. Stop whatever holds them (or set NGINX_PORT) and retry.`);
  }

  const pgPort = await preferredOrFreePort(envPort("PG_PORT", 5432));
  const redisPort = await preferredOrFreePort(envPort("REDIS_PORT", 6379));

  const dataRoot = path.join(root, ".data");
  await mkdir(dataRoot, { recursive: true });
  log(`postgres: starting on 127.0.0.1:${pgPort} ...`);
  cluster.postgres = await startPostgres({
    port: pgPort,
    dataDir: path.join(dataRoot, "postgres"),
    echo: false,
    log: (m) => loud(m),
  });
  watch(cluster.postgres.proc, true);
  log(`postgres: ${cluster.postgres.url} (data: ${cluster.postgres.dataDir}${cluster.postgres.persistent ? "" : ", temporary"})`);

  cluster.redis = await startRedis({ port: redisPort });
  watch(cluster.redis.proc, true);
  log(`redis:    ${cluster.redis.url}`);

  const publishKey = process.env.PUBLISH_KEY ?? DEV_PUBLISH_KEY;
  const gatewayEnv: NodeJS.ProcessEnv = {
    HOST: "127.0.0.1",
    REDIS_URL: cluster.redis.url,
    DATABASE_URL: cluster.postgres.url,
    JWT_SECRET: process.env.JWT_SECRET ?? DEV_JWT_SECRET,
    PUBLISH_KEY: publishKey,
    LOG_LEVEL: process.env.LOG_LEVEL ?? "info",
    GATEWAY_ENV: "development",
  };
  log(`gateways: starting ${NODES.map((n) => `${n.name}:${n.port}`).join(", ")} ...`);
  // Started one by one so the `cluster` record always matches what is running, even if a
  // later node fails.
  for (const node of NODES) {
    const proc = await startGatewayProcess({ name: node.name, port: node.port, env: gatewayEnv, timeoutMs: 30_000, echo: true });
    cluster.gateways.push(proc);
    watch(proc, false);
  }

  cluster.nginx = await startNginx({
    port: nginxPort,
    nodes: NODES.map((n) => ({ name: n.name, host: "127.0.0.1", port: n.port })),
    // A temp prefix, not .data/: nginx workers run as an unprivileged user and must reach
    // their temp dirs, which a mode-0700 checkout would prevent.
  });
  watch(cluster.nginx.proc, false);

  // Monitoring is not essential: the cluster keeps running if any of it dies. Exporters
  // and Prometheus prefer their usual ports (what prometheus/prometheus.yml and Grafana
  // expect) and move to free ones when those are taken.
  const redisExporter = await startRedisExporter({ redisUrl: cluster.redis.url, port: await preferredOrFreePort(9121) });
  cluster.exporters.push(redisExporter);
  watch(redisExporter.proc, false);
  const postgresExporter = await startPostgresExporter({ postgresUrl: cluster.postgres.url, port: await preferredOrFreePort(9187) });
  cluster.exporters.push(postgresExporter);
  watch(postgresExporter.proc, false);
  const local = { deployment: "local" };
  cluster.prometheus = await startPrometheus({
    port: await preferredOrFreePort(envPort("PROMETHEUS_PORT", 9090)),
    ruleFiles: repoRuleFiles(),
    scrapeTargets: [
      { job: "gateway", targets: NODES.map((n) => `127.0.0.1:${n.port}`), labels: local },
      { job: "redis", targets: [redisExporter.target], labels: local },
      { job: "postgres", targets: [postgresExporter.target], labels: local },
    ],
  });
  watch(cluster.prometheus.proc, false);

  const base = `127.0.0.1:${nginxPort}`;
  const lines = [
    "",
    "Realtime gateway cluster is up (Ctrl-C to stop).",
    "",
    `  Live page:        http://${base}/      (race screen; fetches a development token itself)`,
    `  Mint a token:     TOKEN=$(npm run -s token -- --sub alice)      # --channels 'race,forecasts:*' --ttl 3600`,
    `  WebSocket:        ws://${base}/ws?token=$TOKEN`,
    `  Publish:          curl -sS -X POST http://${base}/v1/publish \\`,
    `                      -H 'Authorization: Bearer ${publishKey}' -H 'Content-Type: application/json' \\`,
    `                      -d '{"channel":"user:alice","event":"portfolio_update","data":{"cash":100}}'`,
    `  NGINX health:     http://${base}/healthz`,
    ...NODES.map((n) => `  ${n.name}:           http://127.0.0.1:${n.port}  (readyz: /readyz, metrics: http://127.0.0.1:${n.port}/metrics, via nginx: http://${base}/node/${n.name}/readyz)`),
    `  Redis:            ${cluster.redis.url}`,
    `  Postgres:         ${cluster.postgres.url}`,
    `  NGINX logs:       ${cluster.nginx.dir}/access.log, error.log`,
    `  Prometheus:       ${cluster.prometheus.url}  (alerts: ${cluster.prometheus.url}/alerts, targets: ${cluster.prometheus.url}/targets; rules from prometheus/rules)`,
    "",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

let interrupts = 0;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    interrupts += 1;
    if (interrupts > 1) {
      // Second Ctrl-C: the user does not want to wait for draining.
      loud("forced exit: killing every child now");
      for (const proc of liveProcesses()) void proc.kill9();
      process.exit(130);
    }
    log(`${signal} received`);
    void shutdown(0);
  });
}

main().catch(async (err: unknown) => {
  loud(`start-up failed: ${err instanceof Error ? err.message : String(err)}`);
  await shutdown(1);
});
