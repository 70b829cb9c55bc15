/**
 * One soak load generator process: `clients` SDK clients (the real client a
 * browser or Electron app would use, with its reconnection and resume),
 * connected through NGINX, each subscribed to the public channel and its own
 * personal channel. For every delivery the application sees, it checks the
 * channel's sequence (next offset, same epoch), and records publish→receive
 * latency per minute of the run. Driven by loadtest/soak.ts over IPC.
 */

import jwt from "jsonwebtoken";
import WebSocket from "ws";
import { connect, type GatewayClient } from "../shared/src/client/index.js";
import { LatencyHistogram, type HistogramSnapshot } from "./lib/histogram.js";
import { closeClientsThenExit, exitWithController } from "./lib/worker-lifetime.js";

export interface SoakWorkerConfig {
  readonly workerIndex: number;
  readonly wsUrl: string;
  readonly jwtSecret: string;
  /** Client i of this worker is user `${subPrefix}-${workerIndex}-${i}`. */
  readonly subPrefix: string;
  readonly clients: number;
  readonly publicChannel: string;
  /** Start of the run, for bucketing latencies per minute. */
  readonly startedAt: number;
}

/** What one client saw on one channel. */
export interface ChannelSequence {
  epoch: string | null;
  /** First and last offset received in `epoch`. */
  first: number | null;
  last: number | null;
  received: number;
  /** Offsets at or below the last one (a repeat the application was handed). */
  duplicates: number;
  /** Offsets skipped: a delivery past last + 1. */
  skipped: number;
  /** Times the epoch changed under the client. */
  epochChanges: number;
}

export interface ClientReport {
  readonly sub: string;
  readonly channels: Readonly<Record<string, ChannelSequence>>;
  /** SDK `resumed` events that recovered everything, and those that could not. */
  readonly recovered: number;
  readonly notRecovered: number;
  readonly reconnects: number;
}

export type SoakWorkerMessage = { readonly type: "start"; readonly config: SoakWorkerConfig } | { readonly type: "report" } | { readonly type: "close" };

export type SoakWorkerReply =
  | { readonly type: "ready"; readonly connected: number }
  | { readonly type: "report"; readonly clients: readonly ClientReport[]; readonly latencyByMinute: Readonly<Record<number, HistogramSnapshot>> }
  | { readonly type: "closed" };

interface Tracked {
  readonly sub: string;
  readonly client: GatewayClient;
  readonly channels: Record<string, ChannelSequence>;
  recovered: number;
  notRecovered: number;
  reconnects: number;
}

const latencyByMinute = new Map<number, LatencyHistogram>();
const tracked: Tracked[] = [];
let config: SoakWorkerConfig | null = null;

function send(reply: SoakWorkerReply): void {
  process.send?.(reply);
}

function observe(sequence: ChannelSequence, offset: number, epoch: string): void {
  if (sequence.epoch !== epoch) {
    if (sequence.epoch !== null) sequence.epochChanges++;
    sequence.epoch = epoch;
    sequence.first = offset;
    sequence.last = offset;
    sequence.received++;
    return;
  }
  const last = sequence.last ?? offset - 1;
  if (offset <= last) {
    sequence.duplicates++;
    return;
  }
  sequence.skipped += offset - last - 1;
  sequence.last = offset;
  sequence.received++;
}

function start(next: SoakWorkerConfig): void {
  config = next;
  for (let i = 0; i < next.clients; i++) {
    const sub = `${next.subPrefix}-${next.workerIndex}-${i}`;
    const getToken = (): Promise<string> => Promise.resolve(jwt.sign({ sub }, next.jwtSecret, { algorithm: "HS256", expiresIn: 3600 }));
    const client = connect(next.wsUrl, { getToken }, { WebSocket, initialDelayMs: 500, maxDelayMs: 5000 });
    const entry: Tracked = { sub, client, channels: {}, recovered: 0, notRecovered: 0, reconnects: 0 };
    client.on("resumed", (info) => {
      if (info.recovered) entry.recovered++;
      else entry.notRecovered++;
    });
    client.on("reconnecting", () => entry.reconnects++);
    for (const channel of [next.publicChannel, `user:${sub}`]) {
      const sequence: ChannelSequence = { epoch: null, first: null, last: null, received: 0, duplicates: 0, skipped: 0, epochChanges: 0 };
      entry.channels[channel] = sequence;
      client.subscribe(channel, {
        message: (_event, _data, meta) => {
          if (meta.offset === null || meta.epoch === null || meta.ts === null) return;
          observe(sequence, meta.offset, meta.epoch);
          const minute = Math.floor((meta.ts - next.startedAt) / 60_000);
          let histogram = latencyByMinute.get(minute);
          if (histogram === undefined) latencyByMinute.set(minute, (histogram = new LatencyHistogram()));
          histogram.record(Date.now() - meta.ts);
        },
      });
    }
    tracked.push(entry);
  }
  void Promise.all(tracked.map((t) => t.client.once("connected"))).then(() => send({ type: "ready", connected: tracked.length }));
}

process.on("message", (message: SoakWorkerMessage) => {
  switch (message.type) {
    case "start":
      start(message.config);
      return;
    case "report":
      send({
        type: "report",
        clients: tracked.map((t) => ({ sub: t.sub, channels: t.channels, recovered: t.recovered, notRecovered: t.notRecovered, reconnects: t.reconnects })),
        latencyByMinute: Object.fromEntries([...latencyByMinute].map(([minute, histogram]) => [minute, histogram.snapshot()])),
      });
      return;
    case "close":
      closeClientsThenExit(tracked.map((t) => t.client), () => send({ type: "closed" }));
      return;
  }
});

exitWithController();

if (config === null && process.send === undefined) {
  process.stderr.write("soak-worker: run by loadtest/soak.ts (npm run soak)\n");
  process.exit(2);
}
