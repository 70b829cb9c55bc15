/**
 * The Redis rows of `npm run bench` (issue 18, `--only shards`): three
 * gateway nodes under the same load twice in one run, first on one Redis,
 * then on a three-master Redis Cluster (sharded pub/sub), and how many
 * messages each delivered per second.
 *
 * The load is many channels, not one: CHANNELS `forecasts:s<i>`, every
 * socket on one of them (socket i on channel i mod CHANNELS, node i mod 3,
 * so each channel has subscribers on all three nodes), and CONCURRENCY
 * publishers posting batches of BATCH messages to distinct random channels
 * as fast as they are acknowledged, for the window. On the Cluster each
 * batch becomes one script per slot, each on its own shard.
 *
 * Reported per row: messages acknowledged and delivered per second, latency,
 * and the CPU of the gateways, of each Redis process and of the generator,
 * with the machine's busy share, so the ratio can be read for what it is on
 * a machine where all of them share the same cores.
 */

import os from "node:os";
import type { ManagedProcess } from "../scripts/lib/process.js";
import { startRedisCluster } from "../scripts/lib/redis-cluster.js";
import { startRedis } from "../scripts/lib/redis.js";
import { startBenchNodes } from "./lib/bench-nodes.js";
import { LatencyHistogram } from "./lib/histogram.js";
import { cpuSeconds, machineJiffies } from "./lib/proc-stats.js";
import type { WorkerConfig } from "./lib/worker-protocol.js";
import { forkWorker, type WorkerHandle } from "./lib/workers.js";
import { seededRandom } from "../scripts/lib/seeded-random.js";

export interface ShardBenchOptions {
  readonly quick: boolean;
  readonly seconds: number;
  readonly jwtSecret: string;
  readonly publishKey: string;
  readonly log: (line: string) => void;
}

type RedisSetup = "one" | "cluster";

export interface ShardRow {
  readonly id: string;
  readonly label: string;
  readonly setup: RedisSetup;
  readonly sockets: number;
  readonly established: number;
  readonly channels: number;
  readonly acked: number;
  readonly publishFailures: number;
  readonly windowSeconds: number;
  readonly delivered: number;
  readonly expected: number;
  readonly latency: LatencyHistogram;
  readonly gatewayCpuSeconds: number;
  /** Per Redis process (one, or one per master), CPU seconds in the window. */
  readonly redisCpuSeconds: readonly number[];
  readonly generatorCpuSeconds: number;
  readonly controllerCpuSeconds: number;
  readonly machineBusy: number;
}

const NODES = 3;
const BATCH = 50;
const CONCURRENCY = 6;
const DRAIN_WAIT_MS = 15_000;

function sizes(quick: boolean): { sockets: number; channels: number } {
  // Channel counts not divisible by 3, so each channel's subscribers land on every node.
  return quick ? { sockets: 600, channels: 100 } : { sockets: 3000, channels: 500 };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Backend {
  readonly env: Record<string, string>;
  readonly pids: number[];
  stop(): Promise<void>;
}

async function startBackend(setup: RedisSetup): Promise<Backend> {
  if (setup === "one") {
    const redis = await startRedis({ name: "redis-bench" });
    return { env: { REDIS_URL: redis.url }, pids: [redis.proc.pid], stop: () => redis.stop() };
  }
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 });
  return { env: { REDIS_URL: "", REDIS_CLUSTER_NODES: cluster.seeds }, pids: cluster.nodes.map((node) => node.proc.pid), stop: () => cluster.stop() };
}

/** One batch: BATCH distinct channels, each message ~100 bytes on the wire. */
function batchBody(channels: readonly string[], random: () => number, seq: number): string {
  const picked = new Set<number>();
  while (picked.size < Math.min(BATCH, channels.length)) picked.add(Math.floor(random() * channels.length));
  return JSON.stringify({ messages: [...picked].map((c, i) => ({ channel: channels[c], event: "tick", data: { seq, i, v: Math.round(random() * 1e6) } })) });
}

async function runRow(setup: RedisSetup, options: ShardBenchOptions): Promise<ShardRow> {
  const { sockets, channels: channelCount } = sizes(options.quick);
  const channels = Array.from({ length: channelCount }, (_, i) => `forecasts:s${i}`);
  const id = setup === "one" ? "shards-1" : "shards-3";
  const label = setup === "one" ? "3 nodes, one Redis" : "3 nodes, 3-master Redis Cluster";
  options.log(`${id}: starting ${label}`);
  const backend = await startBackend(setup);
  const procs: ManagedProcess[] = [];
  let worker: WorkerHandle | null = null;
  try {
    const prefix = `bench-${id}-${Date.now().toString(36)}`;
    const nodes = await startBenchNodes(
      { label: id, count: NODES, redisEnv: backend.env, prefix, jwtSecret: options.jwtSecret, publishKey: options.publishKey, addressLimits: "off", env: { IDLE_TIMEOUT_S: "120" } },
      procs,
    );
    const targets = nodes.map((node) => `${node.host}:${node.port}`);
    worker = forkWorker();
    const config: WorkerConfig = {
      workerIndex: 0,
      protocol: "raw",
      targets: targets.map((target) => `ws://${target}`),
      sockets,
      jwtSecret: options.jwtSecret,
      subPrefix: `${id}-${Date.now().toString(36)}-`,
      channel: channels[0] as string,
      channels,
      sourceAddresses: Array.from({ length: 20 }, (_, i) => `127.0.1.${i + 1}`),
      concurrency: 200,
      connectBudgetMs: 60_000,
      maxRetries: 3,
      offerDeflate: false,
    };
    const connected = (await worker.ask({ type: "connect", config }, "connected", 90_000)).result;
    options.log(`${id}: ${connected.established}/${sockets} subscribed in ${connected.seconds.toFixed(1)} s`);
    await sleep(options.quick ? 1000 : 2000);

    await worker.ask({ type: "window" }, "window-open", 10_000);
    const gatewayPids = procs.map((proc) => proc.pid);
    const gatewayBefore = gatewayPids.map(cpuSeconds);
    const redisBefore = backend.pids.map(cpuSeconds);
    const controllerBefore = process.cpuUsage();
    const machineBefore = machineJiffies();
    const started = performance.now();
    const deadline = started + options.seconds * 1000;
    const random = seededRandom(18);
    let acked = 0;
    let failures = 0;
    let seq = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, lane) => {
        for (let request = 0; performance.now() < deadline; request++) {
          const body = batchBody(channels, random, seq++);
          const target = targets[(lane + request) % targets.length] as string;
          try {
            const res = await fetch(`http://${target}/v1/publish`, {
              method: "POST",
              headers: { authorization: `Bearer ${options.publishKey}`, "content-type": "application/json" },
              body,
              signal: AbortSignal.timeout(10_000),
            });
            await res.arrayBuffer();
            if (res.status === 200) acked += BATCH;
            else failures++;
          } catch (err) {
            failures++;
            options.log(`${id}: publish failed: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
      }),
    );
    const windowSeconds = (performance.now() - started) / 1000;
    const controllerUsage = process.cpuUsage(controllerBefore);
    const perChannel = connected.established / channelCount;
    const expected = Math.round(acked * perChannel);
    const drainDeadline = Date.now() + DRAIN_WAIT_MS;
    let delivered = 0;
    while (Date.now() < drainDeadline) {
      delivered = (await worker.ask({ type: "count" }, "count", 10_000)).delivered;
      if (delivered >= expected) break;
      await sleep(250);
    }
    // CPU up to the end of delivery: the publishing window plus the drain.
    const gatewayAfter = gatewayPids.map(cpuSeconds);
    const redisAfter = backend.pids.map(cpuSeconds);
    const machineAfter = machineJiffies();
    const stats = (await worker.ask({ type: "report" }, "report", 10_000)).stats;
    const latency = new LatencyHistogram();
    latency.merge(stats.latency);
    const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
    return {
      id,
      label,
      setup,
      sockets,
      established: connected.established,
      channels: channelCount,
      acked,
      publishFailures: failures,
      windowSeconds,
      delivered: stats.delivered,
      expected,
      latency,
      gatewayCpuSeconds: sum(gatewayAfter) - sum(gatewayBefore),
      redisCpuSeconds: redisAfter.map((after, i) => after - (redisBefore[i] as number)),
      generatorCpuSeconds: stats.cpuSeconds,
      controllerCpuSeconds: (controllerUsage.user + controllerUsage.system) / 1e6,
      machineBusy: (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total),
    };
  } finally {
    await worker?.close();
    for (const proc of procs.reverse()) await proc.stop("SIGTERM", 5000);
    await backend.stop();
  }
}

/** One Redis, then the Cluster, same load; a failed row is logged and left out. */
export async function runShardRows(options: ShardBenchOptions): Promise<ShardRow[]> {
  const rows: ShardRow[] = [];
  for (const setup of ["one", "cluster"] as const) {
    try {
      rows.push(await runRow(setup, options));
    } catch (err) {
      options.log(`shards (${setup}) failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    }
    await sleep(options.quick ? 500 : 2000);
  }
  return rows;
}

const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : "–");

export function renderShardRows(rows: readonly ShardRow[]): string {
  if (rows.length === 0) return "(no Redis rows in this run: `--only shards`)";
  const first = rows[0] as ShardRow;
  const lines = [
    `Load: ${first.sockets} sockets on ${first.channels} channels (${fmt(first.established / first.channels)} per channel, on all 3 nodes); ${CONCURRENCY} publishers posting batches of ${BATCH} messages to distinct random channels as fast as they are acknowledged; ${os.cpus().length} cores shared by everything.`,
    "",
    "| row | Redis | messages/s acknowledged | deliveries/s | delivered/expected | p50 ms | p95 ms | gateway CPU (% of a core) | Redis CPU per process (% of a core) | generator + publisher CPU | machine busy |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    const pct = (seconds: number): string => `${fmt((seconds / r.windowSeconds) * 100, 0)} %`;
    lines.push(
      `| ${r.id} | ${r.label} | ${Math.round(r.acked / r.windowSeconds)} | ${Math.round(r.delivered / r.windowSeconds)} | ${r.delivered}/${r.expected} | ${fmt(r.latency.percentile(50))} | ${fmt(r.latency.percentile(95))} | ${pct(r.gatewayCpuSeconds)} | ${r.redisCpuSeconds.map(pct).join(" + ")} | ${pct(r.generatorCpuSeconds + r.controllerCpuSeconds)} | ${fmt(r.machineBusy * 100, 0)} % |`,
    );
  }
  const one = rows.find((r) => r.setup === "one");
  const cluster = rows.find((r) => r.setup === "cluster");
  if (one !== undefined && cluster !== undefined) {
    const rate = (r: ShardRow): number => r.delivered / r.windowSeconds;
    const perMessage = (r: ShardRow, seconds: number): number => (r.acked > 0 ? (seconds / r.acked) * 1e6 : Number.NaN);
    const busiest = (r: ShardRow): number => Math.max(...r.redisCpuSeconds) / r.windowSeconds;
    lines.push(
      "",
      `Ratio, three shards / one Redis: deliveries/s ${fmt(rate(cluster) / rate(one), 2)}×; Redis CPU per message ${fmt(perMessage(one, Math.max(...one.redisCpuSeconds)), 1)} µs on one Redis, ${fmt(perMessage(cluster, cluster.redisCpuSeconds.reduce((a, b) => a + b, 0)), 1)} µs summed over the shards; busiest Redis process ${fmt(busiest(one) * 100, 0)} % of a core vs ${fmt(busiest(cluster) * 100, 0)} %.`,
    );
  }
  return lines.join("\n");
}
