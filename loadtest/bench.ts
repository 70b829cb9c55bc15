/**
 * npm run bench [-- --quick] [-- --only id,id] [-- --seconds N] [-- --profile] [-- --profile-connect]
 *
 * Fan-out benchmark on this machine: the gateway at several scales next to
 * the baselines a team would otherwise pick (Socket.IO on Node's HTTP server
 * with the Redis adapter; a naive `ws` broadcast loop), same workload, same
 * run. Every server is started here and stopped again; clients come from
 * forked generator processes (loadtest/worker.ts).
 *
 * Per scenario: start servers → read RSS → connect and subscribe N sockets
 * (own token each) → settle → read RSS again → open the window → publish a
 * ~200-byte `timer_update` to `forecasts` (or a ~3 KB `forecast_update` to
 * `forecasts:bench`) twice a second for `seconds` → wait until every expected
 * delivery arrived (bounded) → collect latency histograms, deliveries, bytes
 * on the wire, drops, CPU → stop everything.
 *
 * The compression rows (`--only compression`) run one node at 10k with
 * WS_COMPRESSION off/shared/dedicated and clients that offer permessage-deflate,
 * for both payloads, so wire bytes and server CPU per delivery compare in one run.
 *
 * The Redis rows (`--only shards`, loadtest/bench-shards.ts) run three nodes
 * under a many-channel publishing load on one Redis and then on a three-master
 * Redis Cluster, and compare the messages delivered per second.
 *
 * The generator shares the machine's two cores with the servers; its CPU and
 * the machine's total are reported next to each row so a saturated row can
 * be read as such (see docs/performance.md).
 */

import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { repoRoot } from "../scripts/lib/paths.js";
import { startRedis, type RedisHandle } from "../scripts/lib/redis.js";
import type { WsCompression } from "../gateway/src/transport/ws-compression.js";
import { renderShardRows, runShardRows, type ShardRow } from "./bench-shards.js";
import { runController } from "./lib/controller.js";
import { renderSelfTimes, type CpuProfile } from "./lib/cpuprofile.js";
import { LatencyHistogram } from "./lib/histogram.js";
import { childPids, cpuSeconds, cpuSplit, machineJiffies, rssBytes } from "./lib/proc-stats.js";
import { forkWorker, type WorkerHandle } from "./lib/workers.js";
import { InspectorSession } from "./lib/inspector.js";
import { BENCH_JWT_SECRET, BENCH_PUBLISH_KEY, startServers, type ServerKind, type Servers } from "./lib/servers.js";
import { renderStorm, runStorm, type StormResult } from "./lib/storm.js";
import type { ClientProtocol, ConnectResult, WorkerConfig, WorkerStats } from "./lib/worker-protocol.js";
import { seededRandom } from "../scripts/lib/seeded-random.js";

// `race` is the round clock's own channel: the publish API refuses it.
const CHANNEL = "forecasts";
const FORECAST_CHANNEL = "forecasts:bench";
const PUBLISH_INTERVAL_MS = 500;
/** MEMORY_LIMIT_MB of the storm's nodes: a small pod's budget (npm run bench:storm -- --budget-mb to change). */
const STORM_BUDGET_MB = 256;
/** Sockets per generator process: the descriptor limit is 20,000 per process. */
const SOCKETS_PER_WORKER = 17_000;
/** Source addresses per worker; 127.0.<worker+1>.<1..N> */
const ADDRESSES_PER_WORKER = 50;
const DRAIN_WAIT_MS = 10_000;
/**
 * Compression rows: the generator inflates every frame on the same two cores
 * and falls behind; the rows are read per delivery, so they wait until all
 * has arrived.
 */
const COMPRESSION_DRAIN_WAIT_MS = 60_000;

/** timer: the round clock's ~200-byte `timer_update`; forecast: a ~3 KB `forecast_update`. */
type Payload = "timer" | "forecast";

interface Scenario {
  readonly id: string;
  readonly label: string;
  readonly server: ServerKind;
  readonly nodes: number;
  readonly nginx: boolean;
  readonly protocol: ClientProtocol;
  readonly sockets: number;
  readonly payload: Payload;
  /** WS_COMPRESSION of the nodes, with clients offering permessage-deflate; null: a plain row (nothing offered). */
  readonly compression: WsCompression | null;
}

interface Row {
  readonly scenario: Scenario;
  readonly connect: ConnectResult;
  /** The server processes' CPU (user + system) while the sockets connected and subscribed. */
  readonly connectCpuSeconds: number;
  /** Server RSS added per connection, both readings after a full GC in every server process. */
  readonly rssPerConnKb: number;
  /** The same without the GC after connecting: handshake garbage V8 had not collected yet counts too. */
  readonly rssPerConnNoGcKb: number;
  readonly rssAfterMb: number;
  /** V8's young generation in memory before that GC, all server processes: part of the no-GC figure that does not grow with connections. */
  readonly youngBeforeGcMb: number;
  readonly latency: LatencyHistogram;
  readonly delivered: number;
  readonly expected: number;
  readonly publishFailures: number;
  readonly windowSeconds: number;
  readonly serverCpuSeconds: number;
  /** Kernel share of serverCpuSeconds. */
  readonly serverSysShare: number;
  readonly proxyCpuSeconds: number | null;
  readonly generatorCpuSeconds: number;
  readonly machineBusy: number;
  readonly drops: number;
  readonly reconnects: number;
  readonly errors: Record<string, number>;
  /** Bytes the generators read off their sockets in the window. */
  readonly wireBytes: number;
  /** Bytes of the delivered frames as decoded. */
  readonly payloadBytes: number;
}

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    seconds: { type: "string" },
    profile: { type: "boolean", default: false },
    /** Profile the first server process while the sockets connect, instead of during the broadcast. */
    "profile-connect": { type: "boolean", default: false },
    out: { type: "string" },
  },
  strict: true,
});
const QUICK = values.quick ?? false;
const SECONDS = Number(values.seconds ?? (QUICK ? 5 : 10));
const SETTLE_MS = QUICK ? 1000 : 3000;

/** Payload × WS_COMPRESSION of the compression rows (issue 19): each payload without compression, shared, and dedicated. */
const COMPRESSION_ROWS: ReadonlyArray<readonly [Payload, WsCompression]> = [
  ["timer", "off"],
  ["timer", "shared"],
  ["timer", "dedicated-4kb"],
  ["forecast", "off"],
  ["forecast", "shared"],
  ["forecast", "dedicated-4kb"],
];

/** Full sizes from issue 7; --quick shrinks every row ~10× for a smoke run. */
function scenarios(): Scenario[] {
  const n = (full: number, quick: number): number => (QUICK ? quick : full);
  const plain = { payload: "timer", compression: null } as const;
  const all: Scenario[] = [
    { id: "raw-1k", label: "gateway raw, 1 node", server: "gateway", nodes: 1, nginx: false, protocol: "raw", sockets: n(1000, 200), ...plain },
    { id: "base-uws-10k", label: "baseline bare uWS (the floor: no auth, no per-socket state)", server: "uws-bare", nodes: 1, nginx: false, protocol: "raw", sockets: n(10_000, 1000), ...plain },
    { id: "raw-10k", label: "gateway raw, 1 node", server: "gateway", nodes: 1, nginx: false, protocol: "raw", sockets: n(10_000, 1000), ...plain },
    { id: "raw-19k", label: "gateway raw, 1 node", server: "gateway", nodes: 1, nginx: false, protocol: "raw", sockets: n(19_000, 2000), ...plain },
    { id: "raw-100k", label: "gateway raw, 6 nodes", server: "gateway", nodes: 6, nginx: false, protocol: "raw", sockets: n(100_000, 6000), ...plain },
    { id: "raw-nginx-10k", label: "gateway raw, 3 nodes + NGINX", server: "gateway", nodes: 3, nginx: true, protocol: "raw", sockets: n(10_000, 1000), ...plain },
    { id: "sio-10k", label: "gateway Socket.IO, 1 node", server: "gateway", nodes: 1, nginx: false, protocol: "socketio", sockets: n(10_000, 1000), ...plain },
    { id: "base-sio-uws-10k", label: "baseline plain Socket.IO on uWS + redis-adapter", server: "socketio-uws", nodes: 1, nginx: false, protocol: "socketio", sockets: n(10_000, 1000), ...plain },
    { id: "base-sio-10k", label: "baseline Socket.IO on Node http + redis-adapter", server: "socketio-node", nodes: 1, nginx: false, protocol: "socketio", sockets: n(10_000, 1000), ...plain },
    { id: "base-ws-10k", label: "baseline naive ws loop", server: "ws-naive", nodes: 1, nginx: false, protocol: "raw", sockets: n(10_000, 1000), ...plain },
    ...COMPRESSION_ROWS.map(
      ([payload, compression]): Scenario => ({
        id: `zip-${payload}-${compression}`,
        label: `gateway raw, 1 node, WS_COMPRESSION=${compression}`,
        server: "gateway",
        nodes: 1,
        nginx: false,
        protocol: "raw",
        sockets: n(10_000, 1000),
        payload,
        compression,
      }),
    ),
  ];
  const only = selected();
  // `compression` names the group of compression rows.
  return only ? all.filter((s) => only.includes(s.id) || (only.includes("compression") && s.compression !== null)) : all;
}

/** The ids --only names, or null for every row. */
function selected(): string[] | null {
  return values.only?.split(",").map((s) => s.trim()) ?? null;
}

/** The reconnect storm (loadtest/lib/storm.ts) runs after the broadcast rows, as `storm-10k`. */
const STORM_ID = "storm-10k";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

// ---------------------------------------------------------------- the run

interface PublishBody {
  readonly channel: string;
  readonly event: string;
  readonly data: unknown;
}

function timerUpdate(seq: number): PublishBody {
  // Shaped like the round clock's timer_update; the frame on the wire is ~200 bytes.
  return { channel: CHANNEL, event: "timer_update", data: { seq, roundId: 41, phase: "race", remainingMs: 20_000 - seq * PUBLISH_INTERVAL_MS, serverTime: Date.now(), leader: 3 } };
}

function forecastUpdate(seq: number): PublishBody {
  // A dashboard's forecast: per runner a probability band, odds and a short
  // price history. The numbers change from one update to the next, the keys
  // do not; the frame on the wire is ~3 KB.
  const random = seededRandom(seq);
  const price = (base: number): number => Math.round(base * (0.9 + random() * 0.2) * 100) / 100;
  const runners = Array.from({ length: 8 }, (_, r) => ({
    runner: r + 1,
    name: `Runner ${r + 1}`,
    probability: { p10: Math.round(random() * 1000) / 10_000, p50: Math.round(random() * 3000) / 10_000, p90: Math.round(random() * 6000) / 10_000 },
    odds: price(2 + r * 1.5),
    history: Array.from({ length: 36 }, () => price(100 + r * 10)),
  }));
  return { channel: FORECAST_CHANNEL, event: "forecast_update", data: { seq, roundId: 41, model: "gbm-v3", generatedAt: Date.now(), horizonMs: 20_000, runners } };
}

async function publishOne(target: string, seq: number, payload: Payload): Promise<boolean> {
  try {
    const res = await fetch(`${target}/v1/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${BENCH_PUBLISH_KEY}`, "content-type": "application/json" },
      body: JSON.stringify(payload === "timer" ? timerUpdate(seq) : forecastUpdate(seq)),
      signal: AbortSignal.timeout(5000),
    });
    await res.arrayBuffer();
    return res.status === 200;
  } catch (err) {
    log(`publish ${seq} failed: ${err instanceof Error ? err.message : String(err)}`);
    return false;
  }
}

async function inspectorProfile(url: string): Promise<{ stop: () => Promise<CpuProfile> }> {
  const inspector = await InspectorSession.connect(url);
  await inspector.call("Profiler.enable");
  // 1 ms sampling, the default of `node --cpu-prof`.
  await inspector.call("Profiler.setSamplingInterval", { interval: 1000 });
  await inspector.call("Profiler.start");
  return {
    stop: async () => {
      const result = await inspector.call("Profiler.stop");
      inspector.close();
      return result["profile"] as CpuProfile;
    },
  };
}

/** Two full collections in every server process (the second frees what the first's finalizers released). */
/**
 * Two full collections in every server process (the second frees what the
 * first's finalizers released). Resolves with the bytes V8's young
 * generation held in memory just before, summed over the processes: what
 * the collection gives back besides garbage (V8 grows the young generation
 * up to 2 × 16 MB under allocation, whatever the number of connections).
 */
async function collectGarbage(servers: Servers): Promise<number> {
  const young = await Promise.all(
    servers.processes.map(async ({ inspectorUrl }) => {
      if (inspectorUrl === null) return 0;
      const inspector = await InspectorSession.connect(inspectorUrl);
      try {
        const evaluated = await inspector.call("Runtime.evaluate", {
          expression: "process.getBuiltinModule('v8').getHeapSpaceStatistics().filter((s) => s.space_name === 'new_space').reduce((sum, s) => sum + s.physical_space_size, 0)",
          returnByValue: true,
        });
        await inspector.collectGarbage();
        await inspector.collectGarbage();
        const value = (evaluated["result"] as { value?: unknown } | undefined)?.value;
        return typeof value === "number" ? value : 0;
      } finally {
        inspector.close();
      }
    }),
  );
  return young.reduce((a, b) => a + b, 0);
}

async function runScenario(scenario: Scenario, redis: RedisHandle, profileDir: string | null): Promise<Row> {
  log(`${scenario.id}: starting ${scenario.label}`);
  // Every server with the inspector open, so memory is read after a full GC in each.
  const servers = await startServers(scenario, redis, "all");
  const pids = servers.processes.map((p) => p.proc.pid);
  const workers: WorkerHandle[] = [];
  try {
    await sleep(1000);
    await collectGarbage(servers);
    const rssBefore = pids.reduce((sum, pid) => sum + rssBytes(pid), 0);

    const workerCount = Math.max(1, Math.ceil(scenario.sockets / SOCKETS_PER_WORKER), scenario.nginx ? 1 : 0);
    const runTag = `${scenario.id}-${Date.now().toString(36)}-`;
    for (let w = 0; w < workerCount; w++) workers.push(forkWorker());
    const connectBudgetMs = Math.max(30_000, scenario.sockets * 2);
    const connectInspector = servers.processes[0]?.inspectorUrl ?? null;
    const connectProfiler = profileDir !== null && values["profile-connect"] && connectInspector !== null ? await inspectorProfile(connectInspector) : null;
    const connectCpuBefore = pids.map(cpuSeconds);
    const started = Date.now();
    const progress = setInterval(() => log(`${scenario.id}: ${workers.reduce((s, w) => s + w.progress, 0)}/${scenario.sockets} subscribed`), 5000);
    let results: ConnectResult[];
    try {
      results = await Promise.all(
        workers.map((worker, w) => {
          const share = Math.floor(scenario.sockets / workerCount) + (w < scenario.sockets % workerCount ? 1 : 0);
          const config: WorkerConfig = {
            workerIndex: w,
            protocol: scenario.protocol,
            // Rotate the target list per worker so multi-node rows spread evenly.
            targets: servers.clientTargets.map((_, i) => servers.clientTargets[(i + w) % servers.clientTargets.length]!),
            sockets: share,
            jwtSecret: BENCH_JWT_SECRET,
            subPrefix: runTag,
            channel: scenario.payload === "timer" ? CHANNEL : FORECAST_CHANNEL,
            sourceAddresses: Array.from({ length: ADDRESSES_PER_WORKER }, (_, i) => `127.0.${w + 1}.${i + 1}`),
            concurrency: 200,
            connectBudgetMs,
            maxRetries: 3,
            offerDeflate: scenario.compression !== null,
          };
          return worker.ask({ type: "connect", config }, "connected", connectBudgetMs + 30_000).then((m) => m.result);
        }),
      );
    } finally {
      clearInterval(progress);
    }
    const connect: ConnectResult = {
      established: results.reduce((s, r) => s + r.established, 0),
      failed: results.reduce((s, r) => s + r.failed, 0),
      errors: mergeCounts(results.map((r) => r.errors)),
      seconds: (Date.now() - started) / 1000,
    };
    const connectCpuSeconds = pids.map(cpuSeconds).reduce((sum, cpu, i) => sum + cpu - connectCpuBefore[i]!, 0);
    log(`${scenario.id}: ${connect.established}/${scenario.sockets} subscribed in ${connect.seconds.toFixed(1)} s${connect.failed ? `, ${connect.failed} failed ${JSON.stringify(connect.errors)}` : ""}`);
    if (connectProfiler && profileDir) {
      const profile = await connectProfiler.stop();
      const file = path.join(profileDir, `${scenario.id}-connect.cpuprofile`);
      await writeFile(file, JSON.stringify(profile));
      log(`${scenario.id}: CPU profile of ${servers.processes[0]?.name ?? "the server"} while connecting written to ${file}\n${renderSelfTimes(profile, 30)}`);
    }

    await sleep(SETTLE_MS);
    const rssAfterNoGc = pids.reduce((sum, pid) => sum + rssBytes(pid), 0);
    const youngBeforeGc = await collectGarbage(servers);
    const rssAfter = pids.reduce((sum, pid) => sum + rssBytes(pid), 0);

    const inspectorUrl = servers.processes[0]?.inspectorUrl ?? null;
    const profiler = profileDir !== null && !values["profile-connect"] && inspectorUrl !== null ? await inspectorProfile(inspectorUrl) : null;
    await Promise.all(workers.map((w) => w.ask({ type: "window" }, "window-open", 10_000)));
    const nginxPids = servers.nginx ? [servers.nginx.proc.pid, ...childPids(servers.nginx.proc.pid)] : [];
    const cpuBefore = pids.map(cpuSplit);
    const proxyCpuBefore = nginxPids.map(cpuSeconds);
    const machineBefore = machineJiffies();
    const windowStart = performance.now();

    // Steady broadcast: one publish every 500 ms, bounded by count; a slow
    // publish delays the next one instead of piling up concurrent requests.
    const messages = Math.max(1, Math.round((SECONDS * 1000) / PUBLISH_INTERVAL_MS));
    let publishFailures = 0;
    for (let seq = 1; seq <= messages; seq++) {
      const due = windowStart + (seq - 1) * PUBLISH_INTERVAL_MS;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const target = servers.publishTargets[seq % servers.publishTargets.length]!;
      if (!(await publishOne(target, seq, scenario.payload))) publishFailures++;
    }
    const publishedAt = performance.now();

    // Wait (bounded) for the deliveries still in flight.
    const subscribed = connect.established;
    const expectedApprox = (messages - publishFailures) * subscribed;
    const drainDeadline = Date.now() + (scenario.compression === null ? DRAIN_WAIT_MS : COMPRESSION_DRAIN_WAIT_MS);
    let delivered = 0;
    while (Date.now() < drainDeadline) {
      const counts = await Promise.all(workers.map((w) => w.ask({ type: "count" }, "count", 10_000)));
      delivered = counts.reduce((s, c) => s + c.delivered, 0);
      if (delivered >= expectedApprox) break;
      await sleep(250);
    }
    const cpuAfter = pids.map(cpuSplit);
    const proxyCpuAfter = nginxPids.map(cpuSeconds);
    const machineAfter = machineJiffies();
    if (profiler && profileDir) {
      const profile = await profiler.stop();
      const file = path.join(profileDir, `gateway-${scenario.id}.cpuprofile`);
      await writeFile(file, JSON.stringify(profile));
      log(`${scenario.id}: CPU profile of bench-node-1 written to ${file}\n${renderSelfTimes(profile, 25)}`);
    }

    const stats: WorkerStats[] = await Promise.all(workers.map((w) => w.ask({ type: "report" }, "report", 10_000).then((m) => m.stats)));
    const latency = new LatencyHistogram();
    for (const s of stats) latency.merge(s.latency);
    const subscribedAtWindow = stats.reduce((s, x) => s + x.subscribedAtWindow, 0);
    const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
    const established = connect.established;
    return {
      scenario,
      connect,
      connectCpuSeconds,
      rssPerConnKb: established > 0 ? (rssAfter - rssBefore) / established / 1024 : Number.NaN,
      rssPerConnNoGcKb: established > 0 ? (rssAfterNoGc - rssBefore) / established / 1024 : Number.NaN,
      rssAfterMb: rssAfter / 1024 / 1024,
      youngBeforeGcMb: youngBeforeGc / 1024 / 1024,
      latency,
      delivered: sum(stats.map((s) => s.delivered)),
      expected: (messages - publishFailures) * subscribedAtWindow,
      publishFailures,
      // Deliveries per second over the publishing period (what the workload offered).
      windowSeconds: Math.max((publishedAt - windowStart) / 1000, (messages * PUBLISH_INTERVAL_MS) / 1000),
      serverCpuSeconds: sum(cpuAfter.map((c) => c.user + c.system)) - sum(cpuBefore.map((c) => c.user + c.system)),
      serverSysShare:
        (sum(cpuAfter.map((c) => c.system)) - sum(cpuBefore.map((c) => c.system))) /
        Math.max(0.01, sum(cpuAfter.map((c) => c.user + c.system)) - sum(cpuBefore.map((c) => c.user + c.system))),
      proxyCpuSeconds: nginxPids.length > 0 ? sum(proxyCpuAfter) - sum(proxyCpuBefore) : null,
      generatorCpuSeconds: sum(stats.map((s) => s.cpuSeconds)),
      machineBusy: (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total),
      drops: sum(stats.map((s) => s.drops)),
      reconnects: sum(stats.map((s) => s.reconnects)),
      errors: mergeCounts([connect.errors, ...stats.map((s) => s.errors)]),
      wireBytes: sum(stats.map((s) => s.wireBytes)),
      payloadBytes: sum(stats.map((s) => s.payloadBytes)),
    };
  } finally {
    await Promise.all(workers.map((w) => w.close()));
    await servers.stop();
  }
}

function mergeCounts(counts: ReadonlyArray<Readonly<Record<string, number>>>): Record<string, number> {
  const merged: Record<string, number> = {};
  for (const c of counts) for (const [k, v] of Object.entries(c)) merged[k] = (merged[k] ?? 0) + v;
  return merged;
}

// ---------------------------------------------------------------- report

const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : "–");

function renderTable(rows: readonly Row[]): string {
  const lines = [
    "| scenario | server | connections | connect s | server CPU µs/connect | RSS KB/conn (after GC) | RSS KB/conn (no GC) | p50 ms | p95 ms | p99 ms | max ms | deliveries/s | delivered/expected | server CPU s (% of a core, kernel share) | generator CPU s | machine busy |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    const window = r.windowSeconds;
    const cpu = `${fmt(r.serverCpuSeconds, 2)} (${fmt((r.serverCpuSeconds / window) * 100, 0)} %, ${fmt(r.serverSysShare * 100, 0)} % sys)${r.proxyCpuSeconds !== null ? ` + NGINX ${fmt(r.proxyCpuSeconds, 2)}` : ""}`;
    const ratio = r.expected > 0 ? `${fmt((r.delivered / r.expected) * 100, 3)} %` : "–";
    lines.push(
      `| ${r.scenario.id} | ${r.scenario.label} | ${r.connect.established}/${r.scenario.sockets} | ${fmt(r.connect.seconds, 2)} | ${fmt((r.connectCpuSeconds / Math.max(1, r.connect.established)) * 1e6, 0)} | ${fmt(r.rssPerConnKb, 2)} | ${fmt(r.rssPerConnNoGcKb, 2)} | ${fmt(r.latency.percentile(50))} | ${fmt(r.latency.percentile(95))} | ${fmt(r.latency.percentile(99))} | ${fmt(r.latency.percentile(100))} | ${Math.round(r.delivered / window)} | ${ratio} | ${cpu} | ${fmt(r.generatorCpuSeconds, 2)} | ${fmt(r.machineBusy * 100, 0)} % |`,
    );
  }
  return lines.join("\n");
}

function renderRatios(rows: readonly Row[]): string {
  const find = (id: string): Row | undefined => rows.find((r) => r.scenario.id === id);
  const ours = find("raw-10k");
  const lines: string[] = [];
  const compare = (label: string, base: Row | undefined): void => {
    if (!ours || !base) return;
    const mem = base.rssPerConnKb / ours.rssPerConnKb;
    const p95 = base.latency.percentile(95) / ours.latency.percentile(95);
    const p99 = base.latency.percentile(99) / ours.latency.percentile(99);
    const dps = ours.delivered / ours.windowSeconds / (base.delivered / base.windowSeconds);
    lines.push(
      `| ${label} | ${fmt(ours.rssPerConnKb / base.rssPerConnKb, 2)} (${fmt(mem)}× less) | ${fmt(1 / p95, 2)} (${fmt(p95)}× lower) | ${fmt(1 / p99, 2)} (${fmt(p99)}× lower) | ${fmt(dps, 2)} |`,
    );
  };
  lines.push("| raw-10k (ours) / … | memory per connection | p95 | p99 | deliveries/s |", "|---|---:|---:|---:|---:|");
  compare("base-sio-10k (Socket.IO on Node + redis-adapter)", find("base-sio-10k"));
  compare("base-ws-10k (naive ws loop)", find("base-ws-10k"));
  compare("sio-10k (this gateway's own Socket.IO path)", find("sio-10k"));
  return lines.length > 2 ? lines.join("\n") : "(ratios need raw-10k and the baselines in the same run)";
}

function renderTargets(rows: readonly Row[]): string {
  const find = (id: string): Row | undefined => rows.find((r) => r.scenario.id === id);
  const verdict = (ok: boolean | undefined): string => (ok === undefined ? "not run" : ok ? "met" : "**missed**");
  const r100 = find("raw-100k");
  const r10 = find("raw-10k");
  const sio = find("base-sio-10k");
  const allDelivered = rows.filter((r) => r.scenario.server === "gateway").every((r) => r.delivered === r.expected && r.expected > 0);
  const lines = [
    "| target | measured | verdict |",
    "|---|---|---|",
    `| 100k authenticated raw connections (6 nodes) | ${r100 ? `${r100.connect.established}` : "–"} | ${verdict(r100 ? r100.connect.established >= 100_000 : undefined)} |`,
    `| ≤ 2 KB gateway RSS per connection (100k, six nodes; after GC) | ${r100 ? `${fmt(r100.rssPerConnKb, 2)} KB` : "–"} | ${verdict(r100 ? r100.rssPerConnKb <= 2 : undefined)} |`,
    `| p99 < 100 ms at 10k, one node | ${r10 ? `${fmt(r10.latency.percentile(99))} ms` : "–"} | ${verdict(r10 ? r10.latency.percentile(99) < 100 : undefined)} |`,
    `| p95 < 250 ms at 100k | ${r100 ? `${fmt(r100.latency.percentile(95))} ms` : "–"} | ${verdict(r100 ? r100.latency.percentile(95) < 250 : undefined)} |`,
    `| delivered/expected = 100 % (every gateway row) | ${rows.filter((r) => r.scenario.server === "gateway").map((r) => `${r.scenario.id} ${r.delivered}/${r.expected}`).join(", ")} | ${verdict(rows.some((r) => r.scenario.server === "gateway") ? allDelivered : undefined)} |`,
    `| ≥ 6× less memory per connection than Socket.IO-on-Node at 10k | ${r10 && sio ? `${fmt(sio.rssPerConnKb / r10.rssPerConnKb)}×` : "–"} | ${verdict(r10 && sio ? sio.rssPerConnKb / r10.rssPerConnKb >= 6 : undefined)} |`,
    `| ≥ 5× lower p95 than Socket.IO-on-Node at 10k | ${r10 && sio ? `${fmt(sio.latency.percentile(95) / r10.latency.percentile(95))}×` : "–"} | ${verdict(r10 && sio ? sio.latency.percentile(95) / r10.latency.percentile(95) >= 5 : undefined)} |`,
  ];
  return lines.join("\n");
}

/** Issue 16's targets: memory per connection with a distinct user each, the Socket.IO path against plain Socket.IO, connect time against bare uWS. */
function renderLeanTargets(rows: readonly Row[]): string {
  const find = (id: string): Row | undefined => rows.find((r) => r.scenario.id === id);
  const verdict = (ok: boolean | undefined): string => (ok === undefined ? "not run" : ok ? "met" : "**missed**");
  const floor = find("base-uws-10k");
  const lines = ["| target | measured | verdict |", "|---|---|---|"];
  for (const id of ["raw-10k", "raw-19k"]) {
    const r = find(id);
    lines.push(`| ≤ 2 KB RSS per authenticated raw connection, distinct users, ${id} (after GC; without GC in brackets) | ${r ? `${fmt(r.rssPerConnKb, 2)} KB (${fmt(r.rssPerConnNoGcKb, 2)} KB)` : "–"} | ${verdict(r ? r.rssPerConnKb <= 2 : undefined)} |`);
  }
  const sio = find("sio-10k");
  const plain = find("base-sio-uws-10k");
  lines.push(
    `| Socket.IO path no heavier than plain Socket.IO on uWS at 10k | ${sio && plain ? `${fmt(sio.rssPerConnKb, 2)} KB against ${fmt(plain.rssPerConnKb, 2)} KB` : "–"} | ${verdict(sio && plain ? sio.rssPerConnKb <= plain.rssPerConnKb : undefined)} |`,
  );
  const raw = find("raw-10k");
  lines.push(
    `| 10k authenticated, subscribed raw connections within 1.5× bare uWS's time | ${raw && floor ? `${fmt(raw.connect.seconds, 2)} s against ${fmt(floor.connect.seconds, 2)} s: ${fmt(raw.connect.seconds / floor.connect.seconds, 2)}×` : "–"} | ${verdict(raw && floor ? raw.connect.seconds <= 1.5 * floor.connect.seconds : undefined)} |`,
  );
  return lines.join("\n");
}

/**
 * The compression rows side by side: per delivery, the frame as decoded, the
 * bytes on the wire (WebSocket framing included, TCP/IP not) and the server's
 * CPU, each against the same payload without compression.
 */
function renderCompression(rows: readonly Row[]): string {
  const zipped = rows.filter((r) => r.scenario.compression !== null);
  if (zipped.length === 0) return "(no compression rows in this run: `--only compression`)";
  const perDelivery = (r: Row, total: number): number => (r.delivered > 0 ? total / r.delivered : Number.NaN);
  const wire = (r: Row): number => perDelivery(r, r.wireBytes);
  const cpuUs = (r: Row): number => perDelivery(r, r.serverCpuSeconds * 1e6);
  const lines = [
    "| scenario | payload | WS_COMPRESSION | frame B | wire B/delivery | wire vs off | server CPU µs/delivery | CPU vs off | RSS KB/conn | p50 ms | p95 ms | delivered/expected | generator CPU s | machine busy |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of zipped) {
    const off = zipped.find((o) => o.scenario.payload === r.scenario.payload && o.scenario.compression === "off");
    const versus = (value: number, base: number | undefined): string => (base === undefined || r === off ? "–" : `${fmt((value / base) * 100, 0)} %`);
    lines.push(
      `| ${r.scenario.id} | ${r.scenario.payload} | ${r.scenario.compression ?? "–"} | ${fmt(perDelivery(r, r.payloadBytes), 0)} | ${fmt(wire(r), 0)} | ${versus(wire(r), off && wire(off))} | ${fmt(cpuUs(r), 2)} | ${versus(cpuUs(r), off && cpuUs(off))} | ${fmt(r.rssPerConnKb, 2)} | ${fmt(r.latency.percentile(50))} | ${fmt(r.latency.percentile(95))} | ${r.delivered}/${r.expected} | ${fmt(r.generatorCpuSeconds, 2)} | ${fmt(r.machineBusy * 100, 0)} % |`,
    );
  }
  return lines.join("\n");
}

function renderNotes(rows: readonly Row[]): string {
  const notes: string[] = [];
  for (const r of rows) {
    const extra: string[] = [];
    if (r.connect.failed > 0) extra.push(`${r.connect.failed} sockets never subscribed`);
    if (r.drops > 0) extra.push(`${r.drops} dropped, ${r.reconnects} reconnected`);
    if (r.publishFailures > 0) extra.push(`${r.publishFailures} publishes failed`);
    const errors = Object.entries(r.errors);
    if (errors.length > 0) extra.push(`errors ${errors.map(([k, v]) => `${k}×${v}`).join(", ")}`);
    notes.push(`- ${r.scenario.id}: connect ${fmt(r.connect.seconds)} s (${Math.round(r.connect.established / Math.max(r.connect.seconds, 0.001))}/s), server RSS ${fmt(r.rssAfterMb, 0)} MB after connect and GC (V8's young generation held ${fmt(r.youngBeforeGcMb, 0)} MB before it)${extra.length ? `; ${extra.join("; ")}` : ""}`);
  }
  return notes.join("\n");
}

async function main(): Promise<void> {
  const load = os.loadavg();
  const header = [
    `# npm run bench${QUICK ? " --quick" : ""}`,
    "",
    `${new Date().toISOString()} · ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"} · ${Math.round(os.totalmem() / 2 ** 30)} GiB · Node ${process.version} · load average at start ${load.map((l) => l.toFixed(2)).join(" ")}`,
    `Workload: every socket subscribed to \`${CHANNEL}\`; one ~200-byte \`timer_update\` every ${PUBLISH_INTERVAL_MS} ms for ${SECONDS} s (compression rows: the same, or a ~3 KB \`forecast_update\` to \`${FORECAST_CHANNEL}\`); latency = receive time − the frame's publish \`ts\`; generator processes on the same machine.`,
  ].join("\n");

  const profileDir = values.profile || values["profile-connect"] ? path.join(repoRoot(), "loadtest", "results") : null;
  if (profileDir) await mkdir(profileDir, { recursive: true });
  const only = selected();
  const chosen = scenarios();
  const stormChosen = only === null || only.includes(STORM_ID);
  const rows: Row[] = [];
  let storm: StormResult | null = null;
  if (chosen.length > 0 || stormChosen) {
    const redis = await startRedis();
    try {
      for (const scenario of chosen) {
        try {
          rows.push(await runScenario(scenario, redis, profileDir));
        } catch (err) {
          log(`${scenario.id} failed: ${err instanceof Error ? err.message : String(err)}`);
          process.exitCode = 1;
        }
        // Let TIME_WAIT sockets and the kernel settle between rows.
        await sleep(QUICK ? 500 : 2000);
      }
      if (stormChosen) {
        log(`${STORM_ID}: starting`);
        try {
          storm = await runStorm(redis, { clients: QUICK ? 1000 : 10_000, observers: QUICK ? 100 : 500, workers: 2, budgetMb: STORM_BUDGET_MB, log });
        } catch (err) {
          log(`${STORM_ID} failed: ${err instanceof Error ? err.message : String(err)}`);
          process.exitCode = 1;
        }
      }
    } finally {
      await redis.stop();
    }
  }
  const shardRows: ShardRow[] = only === null || only.includes("shards") ? await runShardRows({ quick: QUICK, seconds: SECONDS, jwtSecret: BENCH_JWT_SECRET, publishKey: BENCH_PUBLISH_KEY, log }) : [];

  const report = [
    header,
    "",
    renderTable(rows),
    "",
    "## Ratios (ours / baseline; the × figure is how many times better)",
    "",
    renderRatios(rows),
    "",
    "## Targets (issue 16): lean, fast connections",
    "",
    renderLeanTargets(rows),
    "",
    `## Reconnect storm (issue 16): \`${STORM_ID}\``,
    "",
    storm === null ? "(not run: `--only storm-10k`)" : renderStorm(storm),
    "",
    "## Targets (issue 7)",
    "",
    renderTargets(rows),
    "",
    "## Compression (issue 19): per delivery, with and without permessage-deflate",
    "",
    renderCompression(rows),
    "",
    "## Redis (issue 18): one Redis vs a three-shard Redis Cluster, many channels",
    "",
    renderShardRows(shardRows),
    "",
    "## Notes",
    "",
    renderNotes(rows),
    `- load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
    "",
  ].join("\n");
  const out = values.out ?? path.join(repoRoot(), "loadtest", "results", QUICK ? "quick.md" : "latest.md");
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, report);
  process.stdout.write(`${report}\nwritten to ${path.relative(process.cwd(), out)}\n`);
}

runController("bench", main);
