/**
 * npm run soak -- --minutes N (default 10): thousands of SDK clients through
 * NGINX on a three-node cluster, publishing throughout (a public channel and
 * every client's personal channel, each publish retried with its idempotency
 * key until acknowledged), and a node SIGKILLed and restarted every minute.
 *
 * Prints, and writes to loadtest/results/soak.md:
 * - delivered / expected: every acknowledged offset each client should hold
 *   (target exactly 100 %, with no duplicate and no skipped offset);
 * - p99 publish→receive latency per minute;
 * - recoveries: reconnects, and channels the SDK could not resume;
 * - RSS of every process at start and end, and its growth per hour (a least
 *   squares fit over the second half of the run; target flat).
 */

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { startGatewayProcess } from "../scripts/lib/gateway.js";
import { startNginx } from "../scripts/lib/nginx.js";
import { repoRoot } from "../scripts/lib/paths.js";
import { freePort } from "../scripts/lib/ports.js";
import { stopAll, type ManagedProcess } from "../scripts/lib/process.js";
import { startRedis } from "../scripts/lib/redis.js";
import { runController } from "./lib/controller.js";
import { LatencyHistogram } from "./lib/histogram.js";
import { ackedOffsets, IdempotentPublisher } from "./lib/idempotent-publisher.js";
import { rssBytes } from "./lib/proc-stats.js";
import { forkLoadProcess, IpcWorker } from "./lib/workers.js";
import type { ClientReport, SoakWorkerConfig, SoakWorkerMessage, SoakWorkerReply } from "./soak-worker.js";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    clients: { type: "string", default: "2000" },
    workers: { type: "string", default: "4" },
    /** Publishes per second, alternating the public channel and a personal one. */
    rate: { type: "string", default: "40" },
    /** Seconds between node kills (a minute by default). */
    "kill-every": { type: "string", default: "60" },
  },
  strict: true,
});

const MINUTES = Number(values.minutes);
const CLIENTS = Number(values.clients);
const WORKERS = Number(values.workers);
const RATE = Number(values.rate);
const KILL_EVERY_MS = Number(values["kill-every"]) * 1000;
const JWT_SECRET = "soak-secret-0123456789abcdef";
const PUBLISH_KEY = "soak-publish-key-0123456789";
const PUBLIC_CHANNEL = "forecasts:soak";
const SUB_PREFIX = "soak";
/** RSS readings every this often, per process. */
const SAMPLE_MS = 5000;

for (const [name, value] of Object.entries({ minutes: MINUTES, clients: CLIENTS, workers: WORKERS, rate: RATE, "kill-every": KILL_EVERY_MS })) {
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
}

/** How long the clients of one worker may take to connect and subscribe. */
const CONNECT_TIMEOUT_MS = 120_000;
/** How long a worker may take to report or close. */
const REPLY_TIMEOUT_MS = 60_000;

function forkWorker(): IpcWorker<SoakWorkerMessage, SoakWorkerReply> {
  return new IpcWorker(forkLoadProcess("soak-worker.js"), "soak worker");
}

/** MB per hour from (ms, bytes) samples: the slope of a least-squares line. */
function growthPerHour(samples: ReadonlyArray<readonly [number, number]>): number {
  if (samples.length < 2) return Number.NaN;
  const n = samples.length;
  const meanT = samples.reduce((sum, [t]) => sum + t, 0) / n;
  const meanB = samples.reduce((sum, [, b]) => sum + b, 0) / n;
  let num = 0;
  let den = 0;
  for (const [t, b] of samples) {
    num += (t - meanT) * (b - meanB);
    den += (t - meanT) ** 2;
  }
  return den === 0 ? 0 : ((num / den) * 3_600_000) / (1024 * 1024);
}

function mb(bytes: number): string {
  return Number.isFinite(bytes) ? (bytes / (1024 * 1024)).toFixed(1) : "—";
}

async function main(): Promise<void> {
  const started = Date.now();
  const redisDir = await mkdtemp(path.join(os.tmpdir(), "gw-soak-redis-"));
  const redis = await startRedis({ dir: redisDir, persistence: "aof" });
  const prefix = `soak-${process.pid}`;
  // Every client comes from this one address: the per-address connect limits (the nodes' and NGINX's) are off.
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: prefix, JWT_SECRET, PUBLISH_KEY, LOG_LEVEL: "warn", DRAIN_WINDOW_MS: "2000", CLOCK_ENABLED: "false", CONNECTS_PER_ADDRESS_PER_S: "0" };
  const nodes = await Promise.all(
    ["soak-1", "soak-2", "soak-3"].map(async (name) => ({ name, port: await freePort() })),
  );
  const procs = new Map<string, ManagedProcess>();
  for (const node of nodes) procs.set(node.name, await startGatewayProcess({ name: node.name, port: node.port, env }));
  const nginx = await startNginx({ nodes: nodes.map((node) => ({ name: node.name, host: "127.0.0.1", port: node.port })), limits: "off" });
  process.stdout.write(`soak: cluster up (Redis with AOF, 3 nodes, NGINX ${nginx.url}); connecting ${CLIENTS} SDK clients in ${WORKERS} workers\n`);

  const workers = Array.from({ length: WORKERS }, () => forkWorker());
  const perWorker = Math.ceil(CLIENTS / WORKERS);
  await Promise.all(
    workers.map((worker, workerIndex) => {
      const config: SoakWorkerConfig = { workerIndex, wsUrl: `${nginx.url.replace(/^http/, "ws")}/ws`, jwtSecret: JWT_SECRET, subPrefix: SUB_PREFIX, clients: Math.min(perWorker, CLIENTS - workerIndex * perWorker), publicChannel: PUBLIC_CHANNEL, startedAt: started };
      return worker.ask({ type: "start", config }, "ready", CONNECT_TIMEOUT_MS);
    }),
  );
  // Let every subscription be confirmed before counting from the first publish.
  await sleep(3000);
  const users = workers.flatMap((_, w) => Array.from({ length: Math.min(perWorker, CLIENTS - w * perWorker) }, (__, i) => `${SUB_PREFIX}-${w}-${i}`));

  const durationMs = MINUTES * 60_000;
  const publisher = new IdempotentPublisher({
    nodes: () => nodes.map((node) => `http://127.0.0.1:${node.port}`),
    publishKey: PUBLISH_KEY,
    channelOf: (seq) => (seq % 2 === 0 ? PUBLIC_CHANNEL : `user:${users[Math.floor(seq / 2) % users.length] as string}`),
    intervalMs: 1000 / RATE,
    maxMessages: Number.MAX_SAFE_INTEGER,
    maxDurationMs: durationMs,
  });
  const rss = new Map<string, Array<readonly [number, number]>>();
  const sampleRss = (): void => {
    const now = Date.now();
    const pids: Array<[string, number]> = [...[...procs].map(([name, proc]): [string, number] => [name, proc.pid]), ["redis", redis.proc.pid], ["nginx", nginx.proc.pid], ...workers.map((w, i): [string, number] => [`worker-${i}`, w.child.pid ?? -1])];
    for (const [name, pid] of pids) {
      const bytes = rssBytes(pid);
      if (Number.isFinite(bytes)) rss.set(name, [...(rss.get(name) ?? []), [now, bytes]]);
    }
  };
  sampleRss();
  const sampler = setInterval(sampleRss, SAMPLE_MS);

  publisher.start();
  process.stdout.write(`soak: publishing ${RATE}/s for ${MINUTES} min; SIGKILL and restart of one node every ${KILL_EVERY_MS / 1000} s\n`);
  let kills = 0;
  const killer = (async () => {
    for (let next = Date.now() + KILL_EVERY_MS; next < started + durationMs + 10_000; next += KILL_EVERY_MS) {
      await sleep(Math.max(0, next - Date.now()));
      const node = nodes[kills % nodes.length] as { name: string; port: number };
      const proc = procs.get(node.name) as ManagedProcess;
      await proc.kill9();
      kills++;
      process.stdout.write(`soak: ${new Date().toISOString()} SIGKILL ${node.name} (#${kills}), ${publisher.published()} published so far\n`);
      // A new process starts a new RSS history: growth is per process lifetime.
      const history = rss.get(node.name);
      if (history !== undefined) {
        rss.set(`${node.name}#${kills}`, history);
        rss.delete(node.name);
      }
      await sleep(2000);
      procs.set(node.name, await startGatewayProcess({ name: node.name, port: node.port, env }));
      if (Date.now() > started + durationMs - KILL_EVERY_MS / 2) break;
    }
  })();

  await publisher.finished();
  clearInterval(sampler);
  await killer;
  process.stdout.write(`soak: ${publisher.published()} published (${publisher.retries} retried attempts); waiting for deliveries to settle\n`);

  // Settle: every client should reach the last acknowledged offset of its channels.
  let reports: ClientReport[] = [];
  let latency: Record<string, LatencyHistogram> = {};
  for (let attempt = 0; attempt < 30; attempt++) {
    const replies = await Promise.all(workers.map((w) => w.ask({ type: "report" }, "report", REPLY_TIMEOUT_MS)));
    reports = replies.flatMap((reply) => reply.clients);
    latency = {};
    for (const reply of replies) {
      for (const [minute, snapshot] of Object.entries(reply.latencyByMinute)) (latency[minute] ??= new LatencyHistogram()).merge(snapshot);
    }
    const behind = reports.filter((r) => Object.entries(r.channels).some(([channel, seq]) => seq.last !== (publisher.acked.get(channel)?.at(-1)?.offset ?? seq.last)));
    if (behind.length === 0) break;
    await sleep(1000);
  }

  // Delivered against expected, per client and channel, in the channel's last epoch.
  let expected = 0;
  let delivered = 0;
  let duplicates = 0;
  let skipped = 0;
  let recovered = 0;
  let notRecovered = 0;
  let reconnects = 0;
  for (const report of reports) {
    recovered += report.recovered;
    notRecovered += report.notRecovered;
    reconnects += report.reconnects;
    for (const [channel, seq] of Object.entries(report.channels)) {
      const acked = publisher.acked.get(channel);
      const epoch = acked?.at(-1)?.epoch;
      if (epoch === undefined) continue;
      const offsets = ackedOffsets(acked, epoch);
      expected += offsets.length;
      delivered += seq.epoch === epoch ? seq.received : 0;
      duplicates += seq.duplicates;
      skipped += seq.skipped;
    }
  }

  const lines: string[] = [];
  const say = (line = ""): void => {
    lines.push(line);
    process.stdout.write(`${line}\n`);
  };
  const killsPlanned = KILL_EVERY_MS < MINUTES * 60_000;
  say(`# Soak: ${MINUTES} min, ${CLIENTS} SDK clients, ${RATE} publishes/s, ${killsPlanned ? `a node SIGKILLed every ${KILL_EVERY_MS / 1000} s` : "no node killed"}`);
  say();
  say(`Run ${new Date(started).toISOString()}, ${os.cpus().length} cores, load average at the end ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}. Command: \`npm run soak -- --minutes ${MINUTES} --clients ${CLIENTS} --rate ${RATE} --kill-every ${KILL_EVERY_MS / 1000}\`.`);
  say();
  say("| figure | value | target |");
  say("|---|---:|---|");
  say(`| delivered / expected | ${delivered} / ${expected} (${expected === 0 ? "—" : ((100 * delivered) / expected).toFixed(3)} %) | exactly 100 % |`);
  say(`| duplicates handed to the application | ${duplicates} | 0 |`);
  say(`| offsets skipped | ${skipped} | 0 |`);
  say(`| publishes acknowledged (retried attempts) | ${publisher.published()} (${publisher.retries}) | — |`);
  say(`| node kills | ${kills} | ${killsPlanned ? `one every ${KILL_EVERY_MS / 1000} s` : "none planned"} |`);
  say(`| client reconnects | ${reconnects} | — |`);
  say(`| channels resumed with everything recovered | ${recovered} | — |`);
  say(`| channels the SDK could not resume (recovered: false) | ${notRecovered} | 0 |`);
  say();
  say("| minute | deliveries | p50 ms | p99 ms | max ms |");
  say("|---:|---:|---:|---:|---:|");
  for (const [minute, histogram] of Object.entries(latency).sort(([a], [b]) => Number(a) - Number(b))) {
    say(`| ${minute} | ${histogram.count} | ${histogram.percentile(50).toFixed(1)} | ${histogram.percentile(99).toFixed(1)} | ${histogram.maxMs.toFixed(0)} |`);
  }
  say();
  say("| process | lifetime min | RSS first MB | RSS last MB | growth MB/h (second half of its life) |");
  say("|---|---:|---:|---:|---:|");
  for (const [name, samples] of [...rss].sort(([a], [b]) => a.localeCompare(b))) {
    const lifetimeMs = (samples.at(-1)?.[0] ?? 0) - (samples[0]?.[0] ?? 0);
    const half = samples.slice(Math.floor(samples.length / 2));
    // A slope over less than a minute of samples says more about GC timing than about leaks.
    const growth = lifetimeMs >= 2 * 60_000 ? growthPerHour(half).toFixed(1) : "— (too short)";
    say(`| ${name} | ${(lifetimeMs / 60_000).toFixed(1)} | ${mb(samples[0]?.[1] ?? Number.NaN)} | ${mb(samples.at(-1)?.[1] ?? Number.NaN)} | ${growth} |`);
  }

  await mkdir(path.join(repoRoot(), "loadtest/results"), { recursive: true });
  await writeFile(path.join(repoRoot(), "loadtest/results/soak.md"), `${lines.join("\n")}\n`);
  await Promise.all(workers.map((w) => w.ask({ type: "close" }, "closed", REPLY_TIMEOUT_MS).catch(() => undefined)));
  await nginx.stop();
  await stopAll();
  await rm(redisDir, { recursive: true, force: true });
  process.exit(delivered === expected && duplicates === 0 && skipped === 0 ? 0 : 1);
}

runController("soak", main);
