/**
 * The reconnect storm (issue 16): `clients` SDK clients of one node behind
 * NGINX lose it at once (SIGKILL) and come back through NGINX on the other
 * two nodes, resuming their channel with `since`, while a backend keeps
 * publishing to it twice a second.
 *
 * How the clients end up on one node: NGINX's pool names three nodes, but
 * only the first runs while they connect (NGINX moves each connection past
 * the two refusing ports, as it would for any dead node). The other two start
 * afterwards, and `observers` more clients connect to them through NGINX:
 * they were never disconnected, so their latency is the broadcast latency
 * on the nodes that absorb the storm.
 *
 * Measured: the time from the kill until every client has its channel again
 * (and whether history let it recover everything), the attempts each needed
 * and why any was refused, live and replayed delivery latency during the
 * storm, every offset once per client, and each node's RSS every 100 ms
 * against its MEMORY_LIMIT_MB budget.
 */

import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startGatewayProcess } from "../../scripts/lib/gateway.js";
import { startNginx, type NginxHandle } from "../../scripts/lib/nginx.js";
import { freePort } from "../../scripts/lib/ports.js";
import type { ManagedProcess } from "../../scripts/lib/process.js";
import type { RedisHandle } from "../../scripts/lib/redis.js";
import type { StormClientReport, StormWorkerConfig, StormWorkerMessage, StormWorkerReply, StormWorkerReport } from "../storm-worker.js";
import { LatencyHistogram } from "./histogram.js";
import { IdempotentPublisher } from "./idempotent-publisher.js";
import { childPids, cpuSeconds, machineJiffies, rssBytes } from "./proc-stats.js";
import { forkLoadProcess, IpcWorker } from "./workers.js";
import { benchGatewayEnv, benchNginxConf, BENCH_JWT_SECRET, BENCH_PUBLISH_KEY } from "./servers.js";

export interface StormOptions {
  /** Clients on the node that is killed. */
  readonly clients: number;
  /** Clients on the other two nodes, never disconnected. */
  readonly observers: number;
  /** Generator processes for the clients (the observers get one more). */
  readonly workers: number;
  /** MEMORY_LIMIT_MB of every node: the budget the peak RSS is held to. */
  readonly budgetMb: number;
  readonly log: (line: string) => void;
}

export interface NodeMemory {
  readonly name: string;
  readonly beforeMb: number;
  readonly peakMb: number;
  readonly afterMb: number;
}

export interface StormResult {
  readonly options: StormOptions;
  readonly connected: number;
  readonly lost: number;
  readonly back: number;
  /** ms from the kill until every lost client had its channel again; null when some never came back. */
  readonly allBackMs: number | null;
  /** Percentiles of each client's time from the kill until back. */
  readonly backMs: { readonly p50: number; readonly p95: number; readonly p99: number };
  readonly recovered: number;
  readonly notRecovered: number;
  /** Clients by the attempts they needed: attempts → clients. */
  readonly attempts: ReadonlyMap<number, number>;
  /** From the kill until clients saw their socket close: p50, max. */
  readonly noticedMs: { readonly p50: number; readonly max: number };
  /** How long each client stayed away beyond the backoff delays the SDK chose for it (handshakes, refusals, resume): p50, p99, max. */
  readonly beyondBackoffMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly refusals: Readonly<Record<string, number>>;
  readonly observerLatency: LatencyHistogram;
  readonly stormLiveLatency: LatencyHistogram;
  readonly stormReplayLatency: LatencyHistogram;
  readonly duplicates: number;
  readonly skipped: number;
  /** Clients whose last delivered offset is not the last acknowledged one once publishing stopped. */
  readonly behind: number;
  readonly published: number;
  readonly publishRetries: number;
  readonly nodes: readonly NodeMemory[];
  /** CPU seconds from the kill until every client was back, by role, and the machine's busy share over that time. */
  readonly cpu: { readonly seconds: Readonly<Record<string, number>>; readonly windowSeconds: number; readonly machineBusy: number };
}

const CHANNEL = "forecasts";
const PUBLISH_INTERVAL_MS = 500;
/** How long the cluster publishes before the kill, so every client has a position to resume from. */
const STEADY_MS = 3000;
const ALL_BACK_WAIT_MS = 60_000;
const AFTER_STORM_MS = 3000;
const RSS_SAMPLE_MS = 100;
const ADDRESSES_PER_WORKER = 50;

type StormWorker = IpcWorker<StormWorkerMessage, StormWorkerReply>;

function forkStormWorker(): StormWorker {
  return new IpcWorker(forkLoadProcess("storm-worker.js"), "storm worker");
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export async function runStorm(redis: RedisHandle, options: StormOptions): Promise<StormResult> {
  const { log } = options;
  const prefix = `bench-storm-${Date.now().toString(36)}`;
  const spec = { id: "storm", server: "gateway" as const, nodes: 3, nginx: true, compression: null, env: { MEMORY_LIMIT_MB: String(options.budgetMb) } };
  const env = benchGatewayEnv(spec, redis, prefix);
  const nodes = await Promise.all(["storm-1", "storm-2", "storm-3"].map(async (name) => ({ name, port: await freePort() })));
  const procs = new Map<string, ManagedProcess>();
  const workers: StormWorker[] = [];
  let nginx: NginxHandle | null = null;
  const samples = new Map<string, { before: number; peak: number; after: number }>();
  let sampler: NodeJS.Timeout | null = null;
  let publisher: IdempotentPublisher | null = null;
  try {
    const [first, ...others] = nodes as [(typeof nodes)[0], ...typeof nodes];
    procs.set(first.name, await startGatewayProcess({ name: first.name, port: first.port, env, timeoutMs: 30_000 }));
    const confDir = await mkdtemp(path.join(os.tmpdir(), "gw-storm-nginx-conf-"));
    try {
      nginx = await startNginx({ nodes: nodes.map(({ name, port }) => ({ name, host: "127.0.0.1", port })), confPath: await benchNginxConf(confDir), limits: "off" });
    } finally {
      await rm(confDir, { recursive: true, force: true });
    }
    const wsUrl = `${nginx.url.replace(/^http/, "ws")}/ws`;
    const runTag = `storm-${Date.now().toString(36)}-`;
    const startWorkers = async (count: number, clients: number, indexBase: number): Promise<void> => {
      const started = Array.from({ length: count }, () => forkStormWorker());
      workers.push(...started);
      await Promise.all(
        started.map((worker, w) => {
          const index = indexBase + w;
          const share = Math.floor(clients / count) + (w < clients % count ? 1 : 0);
          const config: StormWorkerConfig = {
            workerIndex: index,
            wsUrl,
            jwtSecret: BENCH_JWT_SECRET,
            subPrefix: runTag,
            clients: share,
            channel: CHANNEL,
            sourceAddresses: Array.from({ length: ADDRESSES_PER_WORKER }, (_, i) => `127.0.${100 + index}.${i + 1}`),
          };
          return worker.ask({ type: "start", config }, "ready", 180_000);
        }),
      );
    };

    log(`storm: connecting ${options.clients} SDK clients through NGINX to ${first.name}`);
    await startWorkers(options.workers, options.clients, 0);
    log(`storm: starting ${others.map((n) => n.name).join(" and ")}; ${options.observers} observers connect to them`);
    for (const node of others) procs.set(node.name, await startGatewayProcess({ name: node.name, port: node.port, env, timeoutMs: 30_000 }));
    await startWorkers(1, options.observers, options.workers);

    const sample = (phase: "before" | "during"): void => {
      for (const [name, proc] of procs) {
        const bytes = rssBytes(proc.pid);
        if (!Number.isFinite(bytes)) continue;
        const entry = samples.get(name) ?? { before: bytes, peak: 0, after: bytes };
        if (phase === "before") entry.before = bytes;
        else entry.peak = Math.max(entry.peak, bytes);
        entry.after = bytes;
        samples.set(name, entry);
      }
    };
    sample("before");
    publisher = new IdempotentPublisher({
      nodes: () => [nginx?.url ?? ""],
      publishKey: BENCH_PUBLISH_KEY,
      channelOf: () => CHANNEL,
      intervalMs: PUBLISH_INTERVAL_MS,
      maxMessages: Number.MAX_SAFE_INTEGER,
      maxDurationMs: STEADY_MS + ALL_BACK_WAIT_MS + 60_000,
    });
    publisher.start();
    await sleep(STEADY_MS);

    sampler = setInterval(() => sample("during"), RSS_SAMPLE_MS);
    // CPU by role over the storm: who the two cores were busy with.
    const roles = (): Array<[string, number]> => [
      ...others.map((n): [string, number] => [n.name, procs.get(n.name)?.pid ?? -1]),
      ...(nginx === null ? [] : [nginx.proc.pid, ...childPids(nginx.proc.pid)].map((pid): [string, number] => ["nginx", pid])),
      ["redis", redis.proc.pid],
      ...workers.slice(0, options.workers).map((w): [string, number] => ["storm clients (SDK)", w.child.pid ?? -1]),
      ["observers (SDK)", workers.at(-1)?.child.pid ?? -1],
    ];
    const cpuOf = (): Map<string, number> => {
      const byRole = new Map<string, number>();
      for (const [role, pid] of roles()) byRole.set(role, (byRole.get(role) ?? 0) + (Number.isFinite(cpuSeconds(pid)) ? cpuSeconds(pid) : 0));
      return byRole;
    };
    const cpuBefore = cpuOf();
    const machineBefore = machineJiffies();
    const killedAt = Date.now();
    await Promise.all(workers.map((w) => w.ask({ type: "mark", at: killedAt }, "marked", 10_000)));
    log(`storm: SIGKILL ${first.name}`);
    await procs.get(first.name)?.kill9();
    procs.delete(first.name);

    let allBackMs: number | null = null;
    const stormWorkers = workers.slice(0, options.workers);
    while (Date.now() - killedAt < ALL_BACK_WAIT_MS) {
      await sleep(100);
      const statuses = await Promise.all(stormWorkers.map((w) => w.ask({ type: "status" }, "status", 10_000)));
      const back = statuses.reduce((sum, s) => sum + s.back, 0);
      if (back >= options.clients) {
        allBackMs = Date.now() - killedAt;
        break;
      }
    }
    const cpuAfter = cpuOf();
    const machineAfter = machineJiffies();
    const cpu = {
      seconds: Object.fromEntries([...cpuAfter].map(([role, seconds]) => [role, seconds - (cpuBefore.get(role) ?? 0)])),
      windowSeconds: (Date.now() - killedAt) / 1000,
      machineBusy: (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total),
    };
    log(`storm: ${allBackMs === null ? "not every client came back" : `all back in ${allBackMs} ms`}`);
    await sleep(AFTER_STORM_MS);
    clearInterval(sampler);
    sampler = null;
    await publisher.stop();

    // Let the last messages reach everyone, then read the reports.
    const lastAcked = publisher.acked.get(CHANNEL)?.at(-1) ?? null;
    let reports: StormWorkerReport[] = [];
    for (let attempt = 0; attempt < 20; attempt++) {
      reports = (await Promise.all(workers.map((w) => w.ask({ type: "report" }, "report", 30_000)))).map((r) => r.report);
      const behind = reports.flatMap((r) => r.last).filter((last) => lastAcked !== null && (last === null || last.offset !== lastAcked.offset || last.epoch !== lastAcked.epoch)).length;
      if (behind === 0) break;
      await sleep(500);
    }
    return { ...summarise(options, reports, killedAt, allBackMs, lastAcked, publisher, samples), cpu };
  } finally {
    if (sampler !== null) clearInterval(sampler);
    await publisher?.stop().catch((err: unknown) => log(`storm: publisher: ${err instanceof Error ? err.message : String(err)}`));
    await Promise.all(workers.map((w) => w.ask({ type: "close" }, "closed", 15_000).catch(() => w.child.kill("SIGKILL"))));
    await nginx?.stop();
    for (const proc of procs.values()) await proc.stop("SIGTERM", 5000);
  }
}

function summarise(
  options: StormOptions,
  reports: readonly StormWorkerReport[],
  killedAt: number,
  allBackMs: number | null,
  lastAcked: { readonly offset: number; readonly epoch: string } | null,
  publisher: IdempotentPublisher,
  samples: ReadonlyMap<string, { before: number; peak: number; after: number }>,
): Omit<StormResult, "cpu"> {
  const storm = reports.slice(0, options.workers);
  const observers = reports.slice(options.workers);
  const clients: StormClientReport[] = storm.flatMap((r) => [...r.clients]);
  const lost = clients.filter((c) => c.lostAt !== null);
  const back = lost.filter((c) => c.backAt !== null);
  const backTimes = back.map((c) => (c.backAt as number) - killedAt).sort((a, b) => a - b);
  const attempts = new Map<number, number>();
  for (const c of lost) attempts.set(c.attempts, (attempts.get(c.attempts) ?? 0) + 1);
  const beyond = back.map((c) => (c.backAt as number) - (c.lostAt as number) - c.delaysMs.reduce((a, b) => a + b, 0)).sort((a, b) => a - b);
  const noticed = lost.map((c) => (c.lostAt as number) - killedAt).sort((a, b) => a - b);
  const refusals: Record<string, number> = {};
  for (const r of storm) for (const [cause, count] of Object.entries(r.refusals)) refusals[cause] = (refusals[cause] ?? 0) + count;
  const merge = (snapshots: ReadonlyArray<Parameters<LatencyHistogram["merge"]>[0]>): LatencyHistogram => {
    const histogram = new LatencyHistogram();
    for (const s of snapshots) histogram.merge(s);
    return histogram;
  };
  const mb = (bytes: number): number => bytes / 2 ** 20;
  return {
    options,
    connected: clients.length,
    lost: lost.length,
    back: back.length,
    allBackMs,
    backMs: { p50: percentile(backTimes, 50), p95: percentile(backTimes, 95), p99: percentile(backTimes, 99) },
    recovered: back.filter((c) => c.recovered === true).length,
    notRecovered: back.filter((c) => c.recovered === false).length,
    attempts,
    noticedMs: { p50: percentile(noticed, 50), max: percentile(noticed, 100) },
    beyondBackoffMs: { p50: percentile(beyond, 50), p99: percentile(beyond, 99), max: percentile(beyond, 100) },
    refusals,
    observerLatency: merge(observers.map((r) => r.liveLatency)),
    stormLiveLatency: merge(storm.map((r) => r.liveLatency)),
    stormReplayLatency: merge(storm.map((r) => r.replayLatency)),
    duplicates: reports.reduce((sum, r) => sum + r.duplicates, 0),
    skipped: reports.reduce((sum, r) => sum + r.skipped, 0),
    behind: reports.flatMap((r) => r.last).filter((last) => lastAcked !== null && (last === null || last.offset !== lastAcked.offset || last.epoch !== lastAcked.epoch)).length,
    published: publisher.published(),
    publishRetries: publisher.retries,
    nodes: [...samples].map(([name, s]) => ({ name, beforeMb: mb(s.before), peakMb: mb(Math.max(s.peak, s.before)), afterMb: mb(s.after) })),
  };
}

const fmt = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toFixed(digits) : "–");

/** The storm as markdown: the figures, then the targets. */
export function renderStorm(result: StormResult): string {
  const { options } = result;
  const latency = (h: LatencyHistogram): string => (h.count === 0 ? "– | – | – | –" : `${fmt(h.percentile(50), 1)} | ${fmt(h.percentile(95), 1)} | ${fmt(h.percentile(99), 1)} | ${fmt(h.percentile(100), 1)}`);
  const attempts = [...result.attempts].sort((a, b) => a[0] - b[0]).map(([n, clients]) => `${n}: ${clients}`).join(", ");
  const refusals = Object.entries(result.refusals).map(([cause, n]) => `${cause} ×${n}`).join(", ") || "none";
  const firstAttempt = result.attempts.get(1) ?? 0;
  const budget = options.budgetMb;
  // The surviving nodes: the killed one (first) took no part in the storm.
  const peak = Math.max(...result.nodes.slice(1).map((n) => n.peakMb));
  return [
    `${result.connected} SDK clients (SDK defaults: full jitter, first retry within 1 s) on one node of three behind NGINX, SIGKILLed; ${options.observers} observers on the other two; \`${CHANNEL}\` published every ${PUBLISH_INTERVAL_MS} ms throughout (${result.published} messages, ${result.publishRetries} publish attempts retried).`,
    "",
    "| figure | value |",
    "|---|---|",
    `| clients that lost their socket / came back | ${result.lost} / ${result.back} |`,
    `| all back (channel joined again) after the kill | ${result.allBackMs === null ? "**not all**" : `${fmt(result.allBackMs)} ms`} |`,
    `| back after the kill, p50 / p95 / p99 | ${fmt(result.backMs.p50)} / ${fmt(result.backMs.p95)} / ${fmt(result.backMs.p99)} ms |`,
    `| resumed with \`since\`: recovered / not recovered | ${result.recovered} / ${result.notRecovered} |`,
    `| attempts per client (attempts: clients) | ${attempts} |`,
    `| refused attempts, by cause | ${refusals} |`,
    `| the kill noticed by the clients (socket closed), p50 / max | ${fmt(result.noticedMs.p50)} / ${fmt(result.noticedMs.max)} ms |`,
    `| time away beyond the client's own backoff delays (handshake, refusals, resubscribe), p50 / p99 / max | ${fmt(result.beyondBackoffMs.p50)} / ${fmt(result.beyondBackoffMs.p99)} / ${fmt(result.beyondBackoffMs.max)} ms |`,
    `| offsets repeated / skipped (all clients) | ${result.duplicates} / ${result.skipped} |`,
    `| clients short of the last acknowledged offset at the end | ${result.behind} |`,
    "",
    "Delivery latency from the kill on (ms, publish `ts` → client):",
    "",
    "| who | p50 | p95 | p99 | max |",
    "|---|---:|---:|---:|---:|",
    `| observers (on the surviving nodes, never disconnected) | ${latency(result.observerLatency)} |`,
    `| storm clients, live deliveries after their resume | ${latency(result.stormLiveLatency)} |`,
    `| storm clients, missed messages replayed at the resume | ${latency(result.stormReplayLatency)} |`,
    "",
    `Node RSS, sampled every ${RSS_SAMPLE_MS} ms (MEMORY_LIMIT_MB=${budget}; the memory alert fires above 80 %, ${fmt(budget * 0.8)} MB):`,
    "",
    "| node | before the kill MB | peak during the storm MB | after MB | peak / budget |",
    "|---|---:|---:|---:|---:|",
    ...result.nodes.map((n, i) => (i === 0 ? `| ${n.name} (killed) | ${fmt(n.beforeMb, 1)} | – | – | – |` : `| ${n.name} | ${fmt(n.beforeMb, 1)} | ${fmt(n.peakMb, 1)} | ${fmt(n.afterMb, 1)} | ${fmt((n.peakMb / budget) * 100, 0)} % |`)),
    "",
    `CPU from the kill until every client was back (${fmt(result.cpu.windowSeconds, 1)} s; the machine was ${fmt(result.cpu.machineBusy * 100)} % busy, other people's processes included):`,
    "",
    "| process | CPU s | % of one core |",
    "|---|---:|---:|",
    ...Object.entries(result.cpu.seconds).map(([role, seconds]) => `| ${role} | ${fmt(seconds, 2)} | ${fmt((seconds / Math.max(0.001, result.cpu.windowSeconds)) * 100)} % |`),
    "",
    "| target | measured | verdict |",
    "|---|---|---|",
    `| all ${options.clients} back within 10 s | ${result.allBackMs === null ? "not all back" : `${fmt(result.allBackMs)} ms`} | ${result.allBackMs !== null && result.allBackMs <= 10_000 ? "met" : "**missed**"} |`,
    `| no client refused for longer than its backoff (back on its first attempt) | ${firstAttempt} of ${result.lost} on the first attempt; ${refusals} | ${firstAttempt === result.lost ? "met" : "**missed**"} |`,
    `| no node past its memory budget | peak ${fmt(peak, 1)} MB of ${budget} MB | ${peak <= budget ? "met" : "**missed**"} |`,
    `| every offset once, resumed with \`since\` | ${result.recovered} recovered, ${result.notRecovered} not; ${result.duplicates} repeated, ${result.skipped} skipped, ${result.behind} behind | ${result.notRecovered === 0 && result.duplicates === 0 && result.skipped === 0 && result.behind === 0 ? "met" : "**missed**"} |`,
  ].join("\n");
}
