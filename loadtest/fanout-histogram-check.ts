/**
 * npm run bench:histogram [-- --clients 200 --messages 200]
 *
 * Does gateway_fanout_latency_seconds tell the truth? One node, N raw
 * clients on `forecasts`, a steady broadcast at 20 messages/s. Each client records
 * receive time − the message's `ts`; the node's histogram is read from
 * /metrics before and after, and its quantiles are computed the way
 * Prometheus' histogram_quantile does (linear within a bucket). The table
 * shows both and the difference, next to the width of the bucket the
 * server-side quantile fell in.
 */

import { parseArgs } from "node:util";
import jwt from "jsonwebtoken";
import WebSocket from "ws";
import { startGatewayProcess } from "../scripts/lib/gateway.js";
import { freePort } from "../scripts/lib/ports.js";
import { stopAll } from "../scripts/lib/process.js";
import { startRedis } from "../scripts/lib/redis.js";

const SECRET = "histogram-check-secret-0123456789";
const PUBLISH_KEY = "histogram-check-publish-key";

const { values } = parseArgs({ options: { clients: { type: "string", default: "200" }, messages: { type: "string", default: "200" } }, strict: true });
const CLIENTS = Number(values.clients);
const MESSAGES = Number(values.messages);

type Buckets = Map<number, number>;

async function histogram(url: string): Promise<Buckets> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const buckets: Buckets = new Map();
  for (const line of text.split("\n")) {
    const match = /^gateway_fanout_latency_seconds_bucket\{([^}]*)\} (\S+)$/.exec(line);
    if (match === null || !(match[1] ?? "").includes('namespace="forecasts"')) continue;
    const le = /le="([^"]+)"/.exec(match[1] ?? "")?.[1];
    if (le !== undefined) buckets.set(le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), Number(match[2]));
  }
  return buckets;
}

/** Prometheus' histogram_quantile: linear interpolation inside the bucket holding the rank. */
function histogramQuantile(q: number, before: Buckets, after: Buckets): { value: number; bucketWidth: number } {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if ((counts[i] ?? 0) >= rank) {
      const upper = bounds[i] as number;
      const lower = i === 0 ? 0 : (bounds[i - 1] as number);
      const below = i === 0 ? 0 : (counts[i - 1] as number);
      const inBucket = (counts[i] as number) - below;
      if (!Number.isFinite(upper)) return { value: lower, bucketWidth: Number.POSITIVE_INFINITY };
      return { value: lower + (upper - lower) * (inBucket === 0 ? 0 : (rank - below) / inBucket), bucketWidth: upper - lower };
    }
  }
  return { value: Number.NaN, bucketWidth: Number.NaN };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  try {
    await startGatewayProcess({
      name: "histogram-node",
      port,
      env: { REDIS_URL: redis.url, JWT_SECRET: SECRET, PUBLISH_KEY, CLOCK_ENABLED: "false", INGEST_ENABLED: "false", LOG_LEVEL: "warn" },
    });

    const latencies: number[] = [];
    /** offset → earliest receive − ts over all clients: the transit floor of that broadcast. */
    const firstReceipt = new Map<number, number>();
    const sockets: WebSocket[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const token = jwt.sign({ sub: `h${i}` }, SECRET, { expiresIn: 600 });
      // Spread over loopback source addresses so ephemeral ports never run out.
      const socket = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token}`, { localAddress: `127.0.${1 + (i % 200)}.${1 + Math.floor(i / 200) % 250}` });
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once("error", reject);
        socket.on("message", (raw) => {
          const frame = JSON.parse((raw as Buffer).toString("utf8")) as { type: string; id?: number; ts?: number; offset?: number };
          if (frame.type === "welcome") socket.send(JSON.stringify({ type: "subscribe", id: 1, channel: "forecasts" }));
          else if (frame.type === "reply" && frame.id === 1) resolve();
          else if (frame.type === "message" && frame.ts !== undefined) {
            const latency = Date.now() - frame.ts;
            latencies.push(latency);
            const offset = frame.offset ?? -1;
            firstReceipt.set(offset, Math.min(firstReceipt.get(offset) ?? Number.POSITIVE_INFINITY, latency));
          }
        });
      });
    }

    const before = await histogram(url);
    const payload = { roundId: 1, timer: { timeLeft: 30_000, totalDuration: 60_000, percentage: 50 }, currentScreen: "game_screen", serverTime: 0 };
    for (let i = 0; i < MESSAGES; i++) {
      await fetch(`${url}/v1/publish`, { method: "POST", headers: { authorization: `Bearer ${PUBLISH_KEY}` }, body: JSON.stringify({ channel: "forecasts", event: "timer_update", data: { ...payload, serverTime: Date.now() } }) });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const deadline = Date.now() + 10_000;
    while (latencies.length < CLIENTS * MESSAGES && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const after = await histogram(url);
    for (const socket of sockets) socket.terminate();

    latencies.sort((a, b) => a - b);
    const firsts = [...firstReceipt.values()].sort((a, b) => a - b);
    const rows = [0.5, 0.95, 0.99].map((q) => {
      const server = histogramQuantile(q, before, after);
      const first = percentile(firsts, q);
      const all = percentile(latencies, q);
      return `| p${Math.round(q * 100)} | ${(server.value * 1000).toFixed(1)} | ${(server.bucketWidth * 1000).toFixed(1)} | ${first.toFixed(1)} | ${(first - server.value * 1000).toFixed(1)} | ${all.toFixed(1)} |`;
    });
    process.stdout.write(
      [
        `fan-out histogram vs clients — ${CLIENTS} raw clients on one node, ${MESSAGES} messages at 20/s, deliveries ${latencies.length}/${CLIENTS * MESSAGES}`,
        "",
        "The server observes once per broadcast (publish ts → handed to every local socket). Comparable on the client side is the",
        "first receipt of each broadcast; every delivery (last column) adds the generator's own time to read N copies in one process.",
        "Client times are whole milliseconds (Date.now()).",
        "",
        "| quantile | server histogram ms | server bucket width ms | first receipt per broadcast ms | first − server ms | all deliveries ms |",
        "|---|---:|---:|---:|---:|---:|",
        ...rows,
        "",
      ].join("\n"),
    );
  } finally {
    await stopAll();
    await redis.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:histogram failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
