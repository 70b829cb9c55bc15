/**
 * npm run bench:heap [-- --connections 19000] [--server gateway] [--protocol raw] [--keep]
 *
 * What each connection holds in a server's JavaScript heap, by kind of
 * object. Starts Redis and one server process with the inspector open,
 * takes a heap snapshot, connects N clients (a distinct user each, every one
 * subscribed to `forecasts`, as in `npm run bench`), lets it settle, and
 * takes another. The difference, divided by N, is the heap each connection
 * costs, per constructor (or closure, string pattern, array, V8 internal).
 * Both snapshots follow a full garbage collection, so only what is live counts.
 *
 * Also prints RSS and V8's heap and external memory before and after
 * (after the first snapshot, so what taking it left allocated is in both);
 * RSS includes native memory such as uWS's per-socket structures (kernel
 * socket buffers are not in it). `npm run bench` reads RSS without any
 * snapshot: its per-connection figure is the one of record.
 */

import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { repoRoot } from "../scripts/lib/paths.js";
import { startRedis } from "../scripts/lib/redis.js";
import { runController } from "./lib/controller.js";
import { forkWorker, type WorkerHandle } from "./lib/workers.js";
import { heapDelta, renderHeapDelta, summariseHeap, type StringPattern } from "./lib/heap-snapshot.js";
import { InspectorSession } from "./lib/inspector.js";
import { rssBytes } from "./lib/proc-stats.js";
import { BENCH_JWT_SECRET, startServers, type ServerKind } from "./lib/servers.js";
import type { ClientProtocol, WorkerConfig } from "./lib/worker-protocol.js";

const SERVERS: readonly ServerKind[] = ["gateway", "uws-bare", "socketio-uws", "socketio-node", "ws-naive"];
const SOCKETS_PER_WORKER = 17_000;
const SETTLE_MS = 3000;

const { values } = parseArgs({
  options: {
    connections: { type: "string", default: "19000" },
    server: { type: "string", default: "gateway" },
    protocol: { type: "string" },
    keep: { type: "boolean", default: false },
    rows: { type: "string", default: "30" },
  },
  strict: true,
});
const CONNECTIONS = Number(values.connections);
const SERVER = values.server as ServerKind;
if (!SERVERS.includes(SERVER)) throw new Error(`--server must be one of ${SERVERS.join(", ")}`);
const PROTOCOL: ClientProtocol = (values.protocol as ClientProtocol | undefined) ?? (SERVER.startsWith("socketio") ? "socketio" : "raw");
if (PROTOCOL !== "raw" && PROTOCOL !== "socketio") throw new Error("--protocol must be raw or socketio");
if (!Number.isInteger(CONNECTIONS) || CONNECTIONS < 1 || CONNECTIONS > 19_900) throw new Error("--connections must be 1..19900 (one process holds at most ~19.9k sockets here)");

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line: string): void => void process.stderr.write(`[bench:heap] ${line}\n`);

interface MemoryReading {
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
}

async function reading(inspector: InspectorSession, pid: number): Promise<MemoryReading> {
  // Twice: the first collection can leave work (weak callbacks, finalizers) that frees more on the second.
  await inspector.collectGarbage();
  await inspector.collectGarbage();
  const evaluated = await inspector.call("Runtime.evaluate", { expression: "JSON.stringify(process.memoryUsage())", returnByValue: true });
  const usage = JSON.parse(String((evaluated["result"] as { value?: unknown }).value)) as { heapUsed: number; external: number };
  return { rss: rssBytes(pid), heapUsed: usage.heapUsed, external: usage.external };
}

async function main(): Promise<void> {
  const runTag = `heap-${Date.now().toString(36)}-`;
  const patterns: StringPattern[] = [
    { label: "user:<sub> (personal channel name)", pattern: new RegExp(`^user:${runTag}`) },
    { label: "<sub>", pattern: new RegExp(`^${runTag}`) },
    { label: "JWT", pattern: /^eyJ[A-Za-z0-9_-]+\.eyJ/ },
  ];
  const redis = await startRedis();
  const workers: WorkerHandle[] = [];
  try {
    const servers = await startServers({ id: `heap-${SERVER}`, server: SERVER, nodes: 1, nginx: false, compression: null }, redis, "all");
    try {
      const server = servers.processes[0]!;
      const inspector = await InspectorSession.connect(server.inspectorUrl!);
      await sleep(1000);
      log("snapshot before connecting");
      const heapBefore = summariseHeap(await inspector.heapSnapshot(), patterns);
      // After the first snapshot, so the native memory it took is in both readings.
      const before = await reading(inspector, server.proc.pid);

      const workerCount = Math.ceil(CONNECTIONS / SOCKETS_PER_WORKER);
      for (let w = 0; w < workerCount; w++) workers.push(forkWorker());
      const budgetMs = Math.max(60_000, CONNECTIONS * 3);
      const started = Date.now();
      const results = await Promise.all(
        workers.map((worker, w) => {
          const share = Math.floor(CONNECTIONS / workerCount) + (w < CONNECTIONS % workerCount ? 1 : 0);
          const config: WorkerConfig = {
            workerIndex: w,
            protocol: PROTOCOL,
            targets: servers.clientTargets,
            sockets: share,
            jwtSecret: BENCH_JWT_SECRET,
            subPrefix: runTag,
            channel: "forecasts",
            sourceAddresses: Array.from({ length: 50 }, (_, i) => `127.0.${w + 1}.${i + 1}`),
            concurrency: 200,
            connectBudgetMs: budgetMs,
            maxRetries: 3,
            offerDeflate: false,
          };
          return worker.ask({ type: "connect", config }, "connected", budgetMs + 30_000).then((m) => m.result);
        }),
      );
      const established = results.reduce((s, r) => s + r.established, 0);
      log(`${established}/${CONNECTIONS} subscribed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      if (established === 0) throw new Error(`no connection established: ${JSON.stringify(results.map((r) => r.errors))}`);
      await sleep(SETTLE_MS);
      const after = await reading(inspector, server.proc.pid);
      log("snapshot after connecting");
      const snapshot = await inspector.heapSnapshot();
      const outDir = path.join(repoRoot(), "loadtest", "results");
      await mkdir(outDir, { recursive: true });
      const name = `heap-${SERVER}-${PROTOCOL}-${established}`;
      if (values.keep) await writeFile(path.join(outDir, `${name}.heapsnapshot`), snapshot);
      const heapAfter = summariseHeap(snapshot, patterns);
      inspector.close();

      const perConn = (bytes: number): string => (bytes / established).toFixed(0);
      const report = [
        `# npm run bench:heap -- --server ${SERVER} --protocol ${PROTOCOL} --connections ${CONNECTIONS}`,
        "",
        `${new Date().toISOString()} · ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"} · Node ${process.version} · load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
        `${established} connections, a distinct user each, each subscribed to \`forecasts\`; readings after two full GCs.`,
        "",
        "| reading | before | after | per connection (bytes) |",
        "|---|---:|---:|---:|",
        `| RSS | ${(before.rss / 2 ** 20).toFixed(1)} MB | ${(after.rss / 2 ** 20).toFixed(1)} MB | ${perConn(after.rss - before.rss)} |`,
        `| V8 heap used | ${(before.heapUsed / 2 ** 20).toFixed(1)} MB | ${(after.heapUsed / 2 ** 20).toFixed(1)} MB | ${perConn(after.heapUsed - before.heapUsed)} |`,
        `| external (Buffers, native) | ${(before.external / 2 ** 20).toFixed(1)} MB | ${(after.external / 2 ** 20).toFixed(1)} MB | ${perConn(after.external - before.external)} |`,
        `| heap snapshot, self sizes | ${(heapBefore.totalBytes / 2 ** 20).toFixed(1)} MB | ${(heapAfter.totalBytes / 2 ** 20).toFixed(1)} MB | ${perConn(heapAfter.totalBytes - heapBefore.totalBytes)} |`,
        "",
        "What the heap gained, per connection, by kind (shallow sizes; the largest first):",
        "",
        renderHeapDelta(heapDelta(heapBefore, heapAfter), established, Number(values.rows)),
        "",
      ].join("\n");
      await writeFile(path.join(outDir, `${name}.md`), report);
      process.stdout.write(`${report}\nwritten to loadtest/results/${name}.md\n`);
    } finally {
      await Promise.all(workers.map((w) => w.close()));
      await servers.stop();
    }
  } finally {
    await redis.stop();
  }
}

runController("bench:heap", main);
