// npm start: Postgres, Redis, three gateway nodes and NGINX in front, plus Prometheus and
// the Redis/Postgres exporters, all as local processes (no Docker). Ctrl-C, SIGTERM or a
// closed terminal (SIGHUP) stops everything in dependency order. Everything started is
// recorded in <run dir>/start.json as it starts: if this process is killed outright, its
// watchdog stops it all, and if the watchdog is gone too, the next npm start does.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { tolerateClosedOutput } from "./lib/closed-output.js";
import { startDemoForecasts, type DemoFeed } from "./lib/demo-forecasts.js";
import { clearDeadRun } from "./lib/leftovers.js";
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
import { readStartOptions } from "./lib/start-options.js";
import { beginRun, type SupervisedRun } from "./lib/supervised-run.js";

const log = (message: string): void => {
  process.stdout.write(`[start] ${message}\n`);
};
const loud = (message: string): void => {
  process.stderr.write(`\n[start] !!! ${message}\n\n`);
};

interface Cluster {
  postgres?: PostgresHandle;
  redis?: RedisHandle;
  gateways: ManagedProcess[];
  nginx?: NginxHandle;
  exporters: ExporterHandle[];
  prometheus?: PrometheusHandle;
  demoFeed?: DemoFeed;
}

const cluster: Cluster = { gateways: [], exporters: [] };
let run: SupervisedRun | undefined;
let shuttingDown = false;

async function shutdown(exitCode: number): Promise<never> {
  if (shuttingDown) return process.exit(exitCode);
  shuttingDown = true;
  log("stopping: demo feed, prometheus, exporters, gateways (draining), nginx, redis, postgres ...");
  // The demo feed publishes through the cluster: it goes before anything it needs.
  await cluster.demoFeed?.stop();
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
  for (const proc of liveProcesses().reverse()) await proc.stop(proc.stopSignal, 5000);
  // Only now: a crash before this point leaves the record for the watchdog.
  await run?.finish();
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
  const options = readStartOptions(process.env, root);
  const nodes = options.gateways;

  // What a killed npm start left (its record names every process and its temp dir) is
  // stopped before anything else looks at ports; a running npm start is refused here.
  const recordFile = path.join(options.runDir, "start.json");
  await clearDeadRun(recordFile, { say: log, warn: loud });
  const supervised = await beginRun(recordFile, loud);
  run = supervised;

  // Fixed ports are part of the documented interface (clients, curl examples): refuse to
  // start rather than silently moving them.
  const fixed = [...nodes.map((n) => ({ what: n.name, port: n.port })), { what: "nginx", port: options.nginxPort }];
  const taken: string[] = [];
  for (const { what, port } of fixed) if (!(await isPortFree(port))) taken.push(`${port} (${what})`);
  if (taken.length > 0) {
    throw new Error(`port(s) already in use: ${taken.join(", ")}. Stop whatever holds them (or set NGINX_PORT / GATEWAY_PORTS) and retry.`);
  }

  const pgPort = await preferredOrFreePort(options.pgPort);
  const redisPort = await preferredOrFreePort(options.redisPort);

  // Temporary state (Redis dir, NGINX prefix, Prometheus TSDB, Postgres socket) lives in the
  // run's temp dir, which goes with the run even after a crash; not in .data/: nginx workers
  // and the postgres user must reach it, which a mode-0700 checkout would prevent.
  const tempDir = async (name: string): Promise<string> => {
    const dir = path.join(supervised.tempDir, name);
    await mkdir(dir);
    return dir;
  };

  supervised.stage("storage");
  await mkdir(options.dataDir, { recursive: true });
  log(`postgres: starting on 127.0.0.1:${pgPort} ...`);
  cluster.postgres = await startPostgres({
    port: pgPort,
    dataDir: path.join(options.dataDir, "postgres"),
    tempDir: supervised.tempDir,
    echo: false,
    log: (m) => loud(m),
  });
  watch(cluster.postgres.proc, true);
  log(`postgres: ${cluster.postgres.url} (data: ${cluster.postgres.dataDir}${cluster.postgres.persistent ? "" : ", temporary"})`);

  // AOF, so a Redis restart keeps offsets, epochs and history: clients resume (docs/operations.md).
  cluster.redis = await startRedis({ port: redisPort, dir: await tempDir("redis"), persistence: "aof" });
  watch(cluster.redis.proc, true);
  log(`redis:    ${cluster.redis.url}`);

  const gatewayEnv: NodeJS.ProcessEnv = {
    HOST: "127.0.0.1",
    REDIS_URL: cluster.redis.url,
    DATABASE_URL: cluster.postgres.url,
    JWT_SECRET: options.jwtSecret,
    PUBLISH_KEY: options.publishKey,
    LOG_LEVEL: options.logLevel,
    GATEWAY_ENV: "development",
    // Who watches the race: GET /v1/presence?channel=race and the `presence` request.
    PRESENCE_NAMESPACES: "race",
  };
  supervised.stage("gateways");
  log(`gateways: starting ${nodes.map((n) => `${n.name}:${n.port}`).join(", ")} ...`);
  // Started one by one so the `cluster` record always matches what is running, even if a
  // later node fails.
  for (const node of nodes) {
    const proc = await startGatewayProcess({ name: node.name, port: node.port, env: gatewayEnv, timeoutMs: 30_000, echo: true });
    cluster.gateways.push(proc);
    watch(proc, false);
  }

  supervised.stage("nginx");
  cluster.nginx = await startNginx({
    port: options.nginxPort,
    nodes: nodes.map((n) => ({ name: n.name, host: "127.0.0.1", port: n.port })),
    dir: await tempDir("nginx"),
  });
  watch(cluster.nginx.proc, false);

  // Monitoring is not essential: the cluster keeps running if any of it dies. Exporters
  // and Prometheus prefer their usual ports (what prometheus/prometheus.yml and Grafana
  // expect) and move to free ones when those are taken.
  supervised.stage("monitoring");
  const redisExporter = await startRedisExporter({ redisUrl: cluster.redis.url, port: await preferredOrFreePort(options.redisExporterPort) });
  cluster.exporters.push(redisExporter);
  watch(redisExporter.proc, false);
  const postgresExporter = await startPostgresExporter({
    postgresUrl: cluster.postgres.url,
    port: await preferredOrFreePort(options.pgExporterPort),
  });
  cluster.exporters.push(postgresExporter);
  watch(postgresExporter.proc, false);
  const local = { deployment: "local" };
  cluster.prometheus = await startPrometheus({
    port: await preferredOrFreePort(options.prometheusPort),
    ruleFiles: repoRuleFiles(),
    scrapeTargets: [
      { job: "gateway", targets: nodes.map((n) => `127.0.0.1:${n.port}`), labels: local },
      { job: "redis", targets: [redisExporter.target], labels: local },
      { job: "postgres", targets: [postgresExporter.target], labels: local },
    ],
    dir: await tempDir("prometheus"),
  });
  watch(cluster.prometheus.proc, false);

  const base = `127.0.0.1:${options.nginxPort}`;
  // Made-up forecasts for the live page's ticker, published like any backend would (and
  // labelled demo data); it lives in this process, so it ends with it whatever ends it.
  if (options.demoFeed) {
    cluster.demoFeed = startDemoForecasts({ baseUrl: `http://${base}`, publishKey: options.publishKey, intervalMs: 2000, say: log });
  }
  const lines = [
    "",
    "Realtime gateway cluster is up (Ctrl-C to stop).",
    "",
    `  Live page:        http://${base}/      (game screen: bet slip, race, results, forecasts, portfolio; fetches a development token itself)`,
    `  Mint a token:     TOKEN=$(npm run -s token -- --sub alice)      # --channels 'race,forecasts:*' --ttl 3600`,
    `  WebSocket:        ws://${base}/ws?token=$TOKEN`,
    `  Publish:          curl -sS -X POST http://${base}/v1/publish \\`,
    `                      -H 'Authorization: Bearer ${options.publishKey}' -H 'Content-Type: application/json' \\`,
    `                      -d '{"channel":"user:alice","event":"portfolio_update","data":{"cash":100}}'`,
    options.demoFeed
      ? "  Demo feed:        made-up forecast_update on forecasts every 2 s, marked as demo data (START_DEMO_FEED=false turns it off)"
      : "  Demo feed:        off (START_DEMO_FEED=false)",
    `  NGINX health:     http://${base}/healthz`,
    ...nodes.map((n) => `  ${n.name}:           http://127.0.0.1:${n.port}  (readyz: /readyz, metrics: http://127.0.0.1:${n.port}/metrics, via nginx: http://${base}/node/${n.name}/readyz)`),
    `  Redis:            ${cluster.redis.url}`,
    `  Postgres:         ${cluster.postgres.url}`,
    `  NGINX logs:       ${cluster.nginx.dir}/access.log, error.log`,
    `  Prometheus:       ${cluster.prometheus.url}  (alerts: ${cluster.prometheus.url}/alerts, targets: ${cluster.prometheus.url}/targets; rules from prometheus/rules)`,
    `  Process record:   ${recordFile}`,
    "",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

// The terminal's Ctrl-C, a process manager's SIGTERM, or the terminal closing (SIGHUP) all
// stop the cluster in order. A second Ctrl-C or SIGTERM while stopping means "do not wait for
// draining"; SIGHUP may come more than once from a closing terminal and never forces.
tolerateClosedOutput();
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    if (shuttingDown) {
      if (signal === "SIGHUP") return;
      loud("forced exit: killing every child now");
      for (const proc of liveProcesses()) void proc.kill9();
      // The record stays: the watchdog removes the temp dir once the children are gone.
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
