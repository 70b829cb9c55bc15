/**
 * The monitoring an SRE relies on, checked against reality: promtool validates the config
 * and unit-tests every alert; then a real Prometheus scrapes a real three-node cluster
 * (plus the Redis and Postgres exporters) under a little traffic, and every dashboard
 * panel query must return series and every rule expression must evaluate.
 */

import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import jwt from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../scripts/lib/paths.js";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import {
  repoRuleFiles,
  startPostgresExporter,
  startPrometheus,
  startRedisExporter,
  type ExporterHandle,
  type PrometheusHandle,
} from "../../scripts/lib/prometheus.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import type { PlaceBetData } from "../../shared/src/commands.js";
import type { ReplyFrame } from "../../shared/src/protocol.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, publish, tryConnect, type TestClient } from "./support/ws-client.js";

const execFileAsync = promisify(execFile);
const root = repoRoot();

async function promtool(...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await execFileAsync("promtool", args, { cwd: root, timeout: 30_000 });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`promtool ${args.join(" ")} failed:\n${e.stdout ?? ""}${e.stderr ?? e.message}`, { cause: err });
  }
}

describe("prometheus configuration and rules (promtool)", () => {
  const ruleFiles = repoRuleFiles().map((file) => path.relative(root, file));
  const testFiles = readdirSync(path.join(root, "prometheus", "tests"))
    .filter((name) => name.endsWith(".yml"))
    .map((name) => path.join("prometheus", "tests", name));

  it("prometheus.yml is valid and loads the rule files", async () => {
    const out = await promtool("check", "config", "prometheus/prometheus.yml");
    expect(out).toMatch(/SUCCESS: \d+ rule files found/);
  });

  it("every rule file is valid", async () => {
    expect(ruleFiles.length).toBeGreaterThan(0);
    await promtool("check", "rules", ...ruleFiles);
  });

  it("every alert rule has a passing promtool unit test, firing and quiet", async () => {
    expect(testFiles.length).toBeGreaterThan(0);
    await promtool("test", "rules", ...testFiles);
    // Every alert is named in a test group that expects it to fire and in one that expects quiet.
    const tests = testFiles.map((file) => readFileSync(path.join(root, file), "utf8")).join("\n");
    const alerts = ruleFiles.flatMap((file) => [...readFileSync(path.join(root, file), "utf8").matchAll(/^\s*- alert:\s*(\S+)/gm)].map((m) => m[1] as string));
    expect(alerts.length).toBeGreaterThan(5);
    for (const alert of alerts) {
      const cases = [...tests.matchAll(new RegExp(`alertname: ${alert}\\n\\s*exp_alerts:( \\[\\])?`, "g"))];
      expect(cases.some((m) => m[1] === undefined), `${alert}: a firing case`).toBe(true);
      expect(cases.some((m) => m[1] !== undefined), `${alert}: a quiet case`).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------

interface PromResult {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: readonly [number, string];
}

type QueryOutcome = { readonly ok: true; readonly series: readonly PromResult[] } | { readonly ok: false; readonly error: string };

interface RuleInfo {
  readonly type: "alerting" | "recording";
  readonly name: string;
  readonly query: string;
  readonly health: string;
  readonly lastError?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

interface PanelTarget {
  readonly dashboard: string;
  readonly panel: string;
  readonly refId: string;
  readonly expr: string;
}

interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly panels: ReadonlyArray<{ readonly type: string; readonly title: string; readonly datasource?: { readonly uid: string }; readonly targets?: ReadonlyArray<{ readonly refId: string; readonly expr: string }> }>;
  readonly templating: { readonly list: ReadonlyArray<{ readonly name: string; readonly query: { readonly query: string } }> };
}

/** n1's MAX_BACKPRESSURE_BYTES: see stallASocket. */
const STALL_SOFT_LIMIT_BYTES = 8 * 1024 * 1024;

const NODE_NAMES = ["mon-1", "mon-2", "mon-3"] as const;
/** How Grafana renders a multi-value `$node` with "All" selected inside a regex matcher. */
const NODE_REGEX = `(${NODE_NAMES.join("|")})`;
const dashboardsDir = path.join(root, "grafana", "dashboards");

function loadDashboards(): Array<{ file: string; dashboard: Dashboard }> {
  return readdirSync(dashboardsDir)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(path.join(dashboardsDir, file), "utf8")) as Dashboard }));
}

/**
 * Grafana's variables as the dashboards use them. $__rate_interval is 1m: the whole
 * traffic of this test fits in it, so counters touched once still have a rate.
 */
function substitute(expr: string): string {
  const out = expr
    .replaceAll("$__rate_interval", "1m")
    .replaceAll("$__interval", "15s")
    .replaceAll("$__range", "5m")
    .replaceAll("${node}", NODE_REGEX)
    .replaceAll("$node", NODE_REGEX);
  if (out.includes("$")) throw new Error(`unknown variable left in: ${out}`);
  return out;
}

async function query(prometheus: PrometheusHandle, expr: string): Promise<QueryOutcome> {
  const res = await fetch(`${prometheus.url}/api/v1/query`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ query: expr }),
  });
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: PromResult[] } };
  if (body.status !== "success" || body.data === undefined) return { ok: false, error: body.error ?? `HTTP ${res.status}` };
  // Scalars (e.g. a bare number) are not what dashboards plot; every panel returns a vector.
  if (body.data.resultType !== "vector") return { ok: false, error: `result type ${body.data.resultType}` };
  return { ok: true, series: body.data.result };
}

async function scalarValue(prometheus: PrometheusHandle, expr: string): Promise<number> {
  const outcome = await query(prometheus, expr);
  if (!outcome.ok) throw new Error(`${expr}: ${outcome.error}`);
  const first = outcome.series[0];
  return first === undefined ? Number.NaN : Number(first.value[1]);
}

async function placeBet(client: TestClient, data: PlaceBetData): Promise<ReplyFrame> {
  return client.request({ type: "command", name: "place_bet", data: { ...data } }, 10_000);
}

/** The round taking bets and its odds, from the snapshot a race subscription returns (round 0 while none is). */
async function currentRound(client: TestClient): Promise<{ roundId: number; odds: readonly number[] }> {
  const reply = await client.request({ type: "subscribe", channel: "race" });
  if (!reply.ok) throw new Error(`subscribe race refused: ${reply.error.code}`);
  await client.request({ type: "unsubscribe", channel: "race" });
  const snapshot = "snapshot" in reply ? reply.snapshot : undefined;
  return snapshot?.event === "timer_update" ? { roundId: snapshot.data.roundId, odds: snapshot.data.odds } : { roundId: 0, odds: [] };
}

function betKey(): string {
  return randomBytes(12).toString("base64url");
}

describe("dashboards and rules against a live cluster", () => {
  let redis: RedisHandle;
  let postgres: PostgresHandle;
  let nodes: GatewayNode[] = [];
  let exporters: ExporterHandle[] = [];
  let prometheus: PrometheusHandle;
  let redisAdmin: Redis;
  const clients: TestClient[] = [];
  const prefix = uniquePrefix("mon");

  beforeAll(async () => {
    [redis, postgres] = await Promise.all([startRedis(), startPostgres({ fast: true })]);
    redisAdmin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    const env = {
      CLOCK_ENABLED: "true",
      DATABASE_URL: postgres.url,
      PG_SCHEMA: `mon_${process.pid}`,
      // A round every 5.5 s with bets open for 4 of them: every clock event appears within
      // the test, and bets find an open round quickly.
      ROUND_WAIT_MS: "4000",
      ROUND_RACE_MS: "1000",
      ROUND_FINISH_MS: "500",
      TIMER_UPDATE_INTERVAL_MS: "250",
      RACE_SYNC_INTERVAL_MS: "250",
      CLOCK_LEASE_TTL_MS: "1500",
    };
    const [n1, n2, n3] = NODE_NAMES;
    nodes = await Promise.all([
      // A large soft limit, so the stalled socket's buffer cannot grow from it to uWS's 4x
      // hard cut between two slow-consumer sweeps (one a second) and the sweep closes it.
      startGatewayNode({ name: n1, redisUrl: redis.url, redisPrefix: prefix, env: { ...env, MAX_BACKPRESSURE_BYTES: String(STALL_SOFT_LIMIT_BYTES) } }),
      startGatewayNode({ name: n2, redisUrl: redis.url, redisPrefix: prefix, env }),
      // A tiny writer queue, so a burst of bets is refused as `overloaded` (the refusal panel).
      startGatewayNode({ name: n3, redisUrl: redis.url, redisPrefix: prefix, env: { ...env, WRITER_QUEUE_MAX: "2", WRITER_FLUSH_MS: "50" } }),
    ]);
    exporters = await Promise.all([startRedisExporter({ redisUrl: redis.url }), startPostgresExporter({ postgresUrl: postgres.url })]);
    const [redisExporter, postgresExporter] = exporters as [ExporterHandle, ExporterHandle];
    // Started before the traffic: Prometheus needs a few seconds before its first scrape.
    prometheus = await startPrometheus({
      scrapeIntervalSeconds: 1,
      ruleFiles: repoRuleFiles(),
      scrapeTargets: [
        { job: "gateway", targets: nodes.map((n) => `127.0.0.1:${n.port}`), labels: { deployment: "local" } },
        { job: "redis", targets: [redisExporter.target], labels: { deployment: "local" } },
        { job: "postgres", targets: [postgresExporter.target], labels: { deployment: "local" } },
      ],
    });
    await generateTraffic();
    await waitForScrapesAfter(Date.now());
  });

  afterAll(async () => {
    for (const client of clients) client.socket.terminate();
    await prometheus?.stop();
    await Promise.all(exporters.map((e) => e.stop()));
    await Promise.all(nodes.map((n) => n.stop()));
    redisAdmin?.disconnect();
    await Promise.all([redis?.stop(), postgres?.stop()]);
  });

  async function client(node: GatewayNode, sub: string): Promise<TestClient> {
    const c = await connect(node.wsUrl, { token: token({ sub }) });
    clients.push(c);
    return c;
  }

  /** Enough traffic that every labelled series the dashboards plot exists. */
  async function generateTraffic(): Promise<void> {
    const [n1, n2, n3] = nodes as [GatewayNode, GatewayNode, GatewayNode];

    // Sockets and subscriptions on every node; a refused subscribe and a malformed frame.
    const subscribers = await Promise.all(nodes.flatMap((node, i) => [client(node, `viewer-${i}-a`), client(node, `viewer-${i}-b`)]));
    await Promise.all(subscribers.map(async (c) => Promise.all([c.subscribe("race"), c.subscribe("forecasts")])));
    const first = subscribers[0] as TestClient;
    const refused = await first.request({ type: "subscribe", channel: "vip-lounge" });
    expect(refused.ok).toBe(false);
    first.sendRaw("{not json");
    await first.waitFor((frame) => frame.type === "error");

    // Refused tokens: a wrong signature and an expired token.
    const forged = jwt.sign({ sub: "mallory" }, "not-the-test-secret-0123456789", { algorithm: "HS256" });
    const expired = token({ sub: "late" }, { expiresIn: -3600 });
    for (const bad of [forged, expired]) expect((await tryConnect(n2.wsUrl, { token: bad })).kind).toBe("refused");

    // Publishes on every node, and one with a wrong key (4xx).
    for (const [i, node] of nodes.entries()) {
      const res = await publish(node.httpUrl, TEST_PUBLISH_KEY, {
        messages: [
          { channel: "forecasts", event: "forecast_update", data: { p: i } },
          { channel: `user:viewer-${i}-a`, event: "portfolio_update", data: { cash: i } },
        ],
      });
      expect(res.status).toBe(200);
    }
    await Promise.all(subscribers.map((c) => c.waitForMessage((m) => m.channel === "forecasts" && (m.data as { p: number }).p === nodes.length - 1)));
    expect((await publish(n1.httpUrl, "wrong-key-wrong-key-wrong", { channel: "forecasts", event: "x", data: null })).status).toBe(401);

    // A Redis that refuses writes: the publish fails with 503 (an error the error-rate
    // alert counts) and the node counts a Redis command error.
    await redisAdmin.config("SET", "min-replicas-to-write", "1");
    try {
      expect((await publish(n2.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts", event: "forecast_update", data: null })).status).toBe(503);
    } finally {
      await redisAdmin.config("SET", "min-replicas-to-write", "0");
    }

    // The ingest stream: one entry published, one rejected.
    const stream = `${prefix}:ingest`;
    await redisAdmin.xadd(stream, "*", "channel", "forecasts", "event", "forecast_update", "data", JSON.stringify({ p: 99 }));
    await redisAdmin.xadd(stream, "*", "channel", "forecasts", "event", "forecast_update", "data", "{not json");
    await first.waitForMessage((m) => m.channel === "forecasts" && (m.data as { p: number }).p === 99, 10_000);

    await placeBets(n1, n3);
    await stallASocket(n1);

    // A normal close, so disconnects have a reason.
    await (subscribers[subscribers.length - 1] as TestClient).close();

    await eventually(
      async () => (await Promise.all(nodes.map((n) => metricValue(n.httpUrl, "gateway_ingest_rejected_total")))).reduce((a, b) => a + b, 0),
      (rejected) => rejected >= 1,
    );
  }

  /** Committed bets on one node (writer and statement metrics); a refused burst on the tiny queue. */
  async function placeBets(writerNode: GatewayNode, tinyQueueNode: GatewayNode): Promise<void> {
    const bettor = await client(writerNode, "bettor");
    const burst = await client(tinyQueueNode, "burster");
    const roundOf = (reply: ReplyFrame): string => (reply.ok ? "ok" : reply.error.code);
    await eventually(
      async () => {
        const { roundId, odds } = await currentRound(bettor);
        if (roundId === 0) return false;
        const replies = await Promise.all(Array.from({ length: 5 }, (_, i) => placeBet(bettor, { roundId, selection: i + 1, amount: 100, odds: odds[i] ?? 0, idempotencyKey: betKey() })));
        return replies.some((r) => roundOf(r) === "ok");
      },
      (ok) => ok,
      20_000,
    );
    await eventually(
      async () => {
        const { roundId, odds } = await currentRound(burst);
        if (roundId === 0) return 0;
        await Promise.all(Array.from({ length: 20 }, (_, i) => placeBet(burst, { roundId, selection: (i % 8) + 1, amount: 100, odds: odds[i % 8] ?? 0, idempotencyKey: betKey() })));
        return metricValue(tinyQueueNode.httpUrl, "gateway_writer_rejected_total", { reason: "overloaded" });
      },
      (overloaded) => overloaded > 0,
      20_000,
    );
  }

  /**
   * A client that stops reading until the node closes it as a slow consumer (the drops
   * panel). The node's sweep runs once a second; from the soft limit to uWebSockets.js' own
   * 4× cut is 3 × STALL_SOFT_LIMIT_BYTES (24 MiB), four seconds of this pace, so the sweep,
   * not the cut, closes it; if the cut wins anyway, try again. The node's counters say when
   * it closed: the paused client cannot see the close until it reads again.
   */
  async function stallASocket(node: GatewayNode): Promise<void> {
    const payload = "x".repeat(64 * 1024);
    const serverCloses = async (): Promise<{ slow: number; cut: number }> => ({
      slow: await metricValue(node.httpUrl, "gateway_disconnects_total", { reason: "slow_consumer" }),
      cut: await metricValue(node.httpUrl, "gateway_disconnects_total", { reason: "abnormal" }),
    });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const sub = `stalled-${attempt}`;
      const stalled = await client(node, sub);
      const before = await serverCloses();
      stalled.socket.pause();
      let after = before;
      const deadline = Date.now() + 20_000;
      for (let n = 0; after.slow + after.cut === before.slow + before.cut && Date.now() < deadline; n++) {
        expect((await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: `user:${sub}`, event: "bulk", data: { n, payload } })).status).toBe(200);
        // Pacing, not waiting for a condition: at most ~6 MiB/s, which fills the kernel
        // buffers and the soft limit within a few seconds.
        await new Promise((resolve) => setTimeout(resolve, 10));
        if (n % 10 === 9) after = await serverCloses();
      }
      stalled.socket.resume();
      if (after.slow + after.cut === before.slow + before.cut) throw new Error(`${node.name} never closed a socket that stopped reading, in 20 s`);
      await stalled.closed;
      if (after.slow > before.slow) {
        expect(await metricValue(node.httpUrl, "gateway_send_drops_total", { kind: "slow_consumer_close" })).toBeGreaterThan(0);
        return;
      }
    }
    throw new Error("no slow-consumer close in 3 attempts (uWebSockets.js cut every socket first)");
  }

  /** Every target scraped at least 5 times, the last time after `since` (ms). */
  async function waitForScrapesAfter(since: number): Promise<void> {
    const targets = nodes.length + exporters.length + 1;
    await eventually(
      async () => {
        const samples = await query(prometheus, "count_over_time(up[1m]) >= 5");
        const fresh = await query(prometheus, `timestamp(up) > ${since / 1000 + 0.5}`);
        return samples.ok && fresh.ok ? Math.min(samples.series.length, fresh.series.length) : 0;
      },
      (count) => count === targets,
      25_000,
    );
  }

  it("scrapes every node and both exporters", async () => {
    const up = await query(prometheus, "up == 1");
    expect(up.ok && up.series.map((s) => s.metric["job"]).sort()).toEqual(["gateway", "gateway", "gateway", "postgres", "prometheus", "redis"]);
    expect(await scalarValue(prometheus, 'min(redis_up{job="redis"})')).toBe(1);
    expect(await scalarValue(prometheus, 'min(pg_up{job="postgres"})')).toBe(1);
  });

  it("every dashboard panel query returns series", async () => {
    const dashboards = loadDashboards();
    expect(dashboards.map((d) => d.file).length).toBeGreaterThanOrEqual(5);
    const targets: PanelTarget[] = [];
    for (const { file, dashboard } of dashboards) {
      const nodeVar = dashboard.templating.list.find((v) => v.name === "node");
      expect(nodeVar, `${file}: a node variable`).toBeDefined();
      // The variable's own query: label_values(metric, node) lists every node.
      const match = /^label_values\((\w+), node\)$/.exec(nodeVar?.query.query ?? "");
      expect(match, `${file}: node variable query`).not.toBeNull();
      const values = await query(prometheus, `group by (node) (${match?.[1] ?? "missing"})`);
      expect(values.ok && values.series.map((s) => s.metric["node"]).sort(), `${file}: node values`).toEqual([...NODE_NAMES]);

      for (const panel of dashboard.panels) {
        if (panel.type === "row") continue;
        expect(panel.datasource?.uid, `${file} / ${panel.title}: datasource`).toBe("prometheus");
        expect(panel.targets?.length ?? 0, `${file} / ${panel.title}: targets`).toBeGreaterThan(0);
        for (const target of panel.targets ?? []) targets.push({ dashboard: file, panel: panel.title, refId: target.refId, expr: target.expr });
      }
    }
    const failures: string[] = [];
    for (const target of targets) {
      const expr = substitute(target.expr);
      const outcome = await query(prometheus, expr);
      const where = `${target.dashboard} / ${target.panel} / ${target.refId}: ${expr}`;
      if (!outcome.ok) failures.push(`${where}\n    error: ${outcome.error}`);
      else if (outcome.series.length === 0) failures.push(`${where}\n    no series`);
      else if (!target.expr.includes("$node") && !/job="(redis|postgres)"/.test(target.expr)) failures.push(`${where}\n    not filtered by $node`);
    }
    expect(failures, `${failures.length} of ${targets.length} panel queries failed`).toEqual([]);
  });

  it("every rule is loaded, healthy, and its expression evaluates", async () => {
    const res = await fetch(`${prometheus.url}/api/v1/rules`);
    const body = (await res.json()) as { data: { groups: Array<{ name: string; rules: RuleInfo[] }> } };
    const rules = body.data.groups.flatMap((g) => g.rules);
    const inFiles = repoRuleFiles().flatMap((file) => [...readFileSync(file, "utf8").matchAll(/^\s*- (?:alert|record):\s*(\S+)/gm)].map((m) => m[1]));
    expect(rules.map((r) => r.name).sort()).toEqual([...inFiles].sort());

    const runbook = readFileSync(path.join(root, "docs", "runbook.md"), "utf8");
    const anchors = new Set([...runbook.matchAll(/^#{2,3} (.+)$/gm)].map((m) => (m[1] as string).trim().toLowerCase().replace(/[^a-z0-9 _-]/g, "").replace(/ /g, "-")));
    const failures: string[] = [];
    for (const rule of rules) {
      // Prometheus evaluated the rule itself at least once by now (1 s interval).
      if (rule.health !== "ok") failures.push(`${rule.name}: health ${rule.health} ${rule.lastError ?? ""}`);
      const outcome = await query(prometheus, rule.query);
      if (!outcome.ok) failures.push(`${rule.name}: ${outcome.error}`);
      // Recording rules feed alerts and dashboards: under traffic they must produce data.
      // Alerts may rightly be empty (nothing is wrong); they only have to evaluate.
      else if (rule.type === "recording" && outcome.series.length === 0) {
        failures.push(`${rule.name}: recording rule returned no series`);
      }
      if (rule.type === "alerting") {
        const url = rule.annotations?.["runbook_url"] ?? "";
        const anchor = /^docs\/runbook\.md#([a-z0-9_-]+)$/.exec(url)?.[1];
        if (anchor === undefined || !anchors.has(anchor)) failures.push(`${rule.name}: runbook_url ${url} has no section in docs/runbook.md`);
        for (const key of ["summary", "description"]) if (!rule.annotations?.[key]) failures.push(`${rule.name}: no ${key}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it("fires nothing on a healthy cluster", async () => {
    const res = await fetch(`${prometheus.url}/api/v1/alerts`);
    const body = (await res.json()) as { data: { alerts: Array<{ labels: Record<string, string>; state: string }> } };
    // Pending is allowed: the test provoked a 503 and a slow consumer on purpose, and every
    // `for` outlasts the test. Firing would mean a rule without a `for` or a real fault
    // (e.g. no round authority for 30 s).
    expect(body.data.alerts.filter((a) => a.state === "firing")).toEqual([]);
  });
});
