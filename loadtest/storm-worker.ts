/**
 * One reconnect-storm generator process (forked by loadtest/storm.ts):
 * `clients` clients of the real SDK (its full-jitter backoff, its resume of
 * every channel with `since`), each with its own user, through NGINX,
 * subscribed to one public channel. Records per client when it lost its
 * socket, how many attempts it took to come back, why attempts were refused,
 * and when the channel was joined again (recovered or not); per delivery, the
 * channel's sequence (next offset, same epoch) and publish→receive latency,
 * live deliveries apart from replayed ones.
 */

import WebSocket from "ws";
import { connect, type GatewayClient } from "../shared/src/client/index.js";
import { LatencyHistogram, type HistogramSnapshot } from "./lib/histogram.js";
import { mintToken } from "./lib/tokens.js";
import { closeClientsThenExit, exitWithController } from "./lib/worker-lifetime.js";

export interface StormWorkerConfig {
  readonly workerIndex: number;
  /** `ws://…/ws` of NGINX. */
  readonly wsUrl: string;
  readonly jwtSecret: string;
  /** Client i of this worker is user `${subPrefix}${workerIndex}-${i}`. */
  readonly subPrefix: string;
  readonly clients: number;
  readonly channel: string;
  /** Local addresses (127.0.x.y) the clients bind round robin, so no (source, NGINX) pair runs out of ports. */
  readonly sourceAddresses: readonly string[];
}

/** One client's storm, times in ms since the epoch. */
export interface StormClientReport {
  /** When its socket went away after the kill; null when it never did (it was on another node). */
  readonly lostAt: number | null;
  /** When it joined the channel again after that (the `resumed` event); null when it is not back. */
  readonly backAt: number | null;
  readonly recovered: boolean | null;
  /** Connection attempts from the loss until it was back (1 when the first one worked). */
  readonly attempts: number;
  /** The SDK's backoff delays before each of those attempts. */
  readonly delaysMs: readonly number[];
}

export interface StormWorkerReport {
  readonly clients: readonly StormClientReport[];
  /** Refused connection attempts by cause (`http_503`, `closed_before_welcome`, …). */
  readonly refusals: Readonly<Record<string, number>>;
  /** Publish→receive latency of live deliveries from the kill on (replays after a resume excluded). */
  readonly liveLatency: HistogramSnapshot;
  /** The same for the replayed ones: how late the missed messages arrived. */
  readonly replayLatency: HistogramSnapshot;
  /** Deliveries of offsets already seen, and offsets skipped, over all clients. */
  readonly duplicates: number;
  readonly skipped: number;
  /** Per client, the last offset and epoch delivered (to compare with what was published). */
  readonly last: ReadonlyArray<{ readonly offset: number; readonly epoch: string } | null>;
}

export type StormWorkerMessage =
  | { readonly type: "start"; readonly config: StormWorkerConfig }
  /** The node was killed at `at`: count from here. */
  | { readonly type: "mark"; readonly at: number }
  | { readonly type: "status" }
  | { readonly type: "report" }
  | { readonly type: "close" };

export type StormWorkerReply =
  | { readonly type: "ready"; readonly connected: number }
  | { readonly type: "marked" }
  | { readonly type: "status"; readonly lost: number; readonly back: number }
  | { readonly type: "report"; readonly report: StormWorkerReport }
  | { readonly type: "closed" };

interface Tracked {
  readonly client: GatewayClient;
  lostAt: number | null;
  backAt: number | null;
  recovered: boolean | null;
  attempts: number;
  readonly delaysMs: number[];
  /** Offsets up to this one (in `liveEpoch`) are replays of the last resume. */
  replayedUpTo: number;
  liveEpoch: string | null;
  lastOffset: number | null;
  lastEpoch: string | null;
}

const tracked: Tracked[] = [];
const refusals = new Map<string, number>();
const liveLatency = new LatencyHistogram();
const replayLatency = new LatencyHistogram();
let duplicates = 0;
let skipped = 0;
let killedAt: number | null = null;

function send(reply: StormWorkerReply): void {
  process.send?.(reply);
}

function countRefusal(cause: string): void {
  refusals.set(cause, (refusals.get(cause) ?? 0) + 1);
}

/** `ws` bound to one of the source addresses, telling refused attempts apart (the SDK only sees a close). */
function boundWebSocket(addresses: readonly string[]): new (url: string, protocols: string[]) => WebSocket {
  let next = 0;
  return class BoundWebSocket extends WebSocket {
    constructor(url: string, protocols: string[]) {
      super(url, protocols, { localAddress: addresses[next++ % addresses.length], skipUTF8Validation: true });
      let answered = false;
      this.on("unexpected-response", (_req, res) => {
        answered = true;
        if (killedAt !== null) countRefusal(`http_${res.statusCode ?? 0}`);
        res.resume();
        this.terminate();
      });
      this.on("message", () => {
        answered = true;
      });
      this.on("close", (code) => {
        if (!answered && killedAt !== null) countRefusal(`closed_${code}_before_welcome`);
      });
    }
  };
}

/** Clients created per step while connecting, and the pause between steps: a few thousand handshakes a second, not all at once. */
const CONNECT_STEP = 100;
const CONNECT_PAUSE_MS = 25;

async function start(config: StormWorkerConfig): Promise<void> {
  const nowS = Math.floor(Date.now() / 1000);
  const Socket = boundWebSocket(config.sourceAddresses);
  const confirmed: Array<Promise<void>> = [];
  for (let i = 0; i < config.clients; i++) {
    if (i > 0 && i % CONNECT_STEP === 0) await new Promise((resolve) => setTimeout(resolve, CONNECT_PAUSE_MS));
    const token = mintToken(config.jwtSecret, `${config.subPrefix}${config.workerIndex}-${i}`, nowS);
    // The SDK's defaults: full jitter from 1 s, doubling to 30 s.
    const client = connect(config.wsUrl, { token }, { WebSocket: Socket as unknown as NonNullable<Parameters<typeof connect>[2]>["WebSocket"] });
    const entry: Tracked = { client, lostAt: null, backAt: null, recovered: null, attempts: 0, delaysMs: [], replayedUpTo: 0, liveEpoch: null, lastOffset: null, lastEpoch: null };
    client.on("disconnected", () => {
      if (killedAt !== null && entry.lostAt === null) entry.lostAt = Date.now();
    });
    client.on("reconnecting", (info) => {
      if (entry.lostAt !== null && entry.backAt === null) entry.delaysMs.push(info.delayMs);
    });
    client.on("connecting", () => {
      if (entry.lostAt !== null && entry.backAt === null) entry.attempts++;
    });
    const subscription = client.subscribe(config.channel, {
      resumed: (info) => {
        if (info.position !== null) {
          entry.replayedUpTo = info.position.offset;
          entry.liveEpoch = info.position.epoch;
        }
        if (entry.lostAt !== null && entry.backAt === null) {
          entry.backAt = Date.now();
          entry.recovered = info.recovered;
        }
      },
      message: (_event, _data, meta) => {
        if (meta.offset === null || meta.epoch === null || meta.ts === null) return;
        if (entry.lastEpoch === meta.epoch && entry.lastOffset !== null) {
          if (meta.offset <= entry.lastOffset) duplicates++;
          else skipped += meta.offset - entry.lastOffset - 1;
        }
        entry.lastOffset = meta.offset;
        entry.lastEpoch = meta.epoch;
        if (killedAt === null || meta.ts < killedAt) return;
        const latency = Date.now() - meta.ts;
        if (meta.epoch === entry.liveEpoch && meta.offset <= entry.replayedUpTo) replayLatency.record(latency);
        else liveLatency.record(latency);
      },
    });
    tracked.push(entry);
    confirmed.push(subscription.ready());
  }
  // Every client connected and its channel confirmed.
  await Promise.all(confirmed);
  send({ type: "ready", connected: tracked.length });
}

function report(): StormWorkerReport {
  return {
    clients: tracked.map((t) => ({ lostAt: t.lostAt, backAt: t.backAt, recovered: t.recovered, attempts: t.attempts, delaysMs: t.delaysMs })),
    refusals: Object.fromEntries(refusals),
    liveLatency: liveLatency.snapshot(),
    replayLatency: replayLatency.snapshot(),
    duplicates,
    skipped,
    last: tracked.map((t) => (t.lastOffset === null || t.lastEpoch === null ? null : { offset: t.lastOffset, epoch: t.lastEpoch })),
  };
}

process.on("message", (message: StormWorkerMessage) => {
  switch (message.type) {
    case "start":
      start(message.config).catch((err: unknown) => {
        process.stderr.write(`storm worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exit(1);
      });
      return;
    case "mark":
      killedAt = message.at;
      send({ type: "marked" });
      return;
    case "status":
      send({ type: "status", lost: tracked.filter((t) => t.lostAt !== null).length, back: tracked.filter((t) => t.backAt !== null).length });
      return;
    case "report":
      send({ type: "report", report: report() });
      return;
    case "close":
      closeClientsThenExit(tracked.map((t) => t.client), () => send({ type: "closed" }));
      return;
  }
});

exitWithController();
