/**
 * Messages between the benchmark controller (loadtest/bench.ts) and its load
 * generator workers (loadtest/worker.ts), over the child_process IPC channel.
 */

import type { HistogramSnapshot } from "./histogram.js";

export type ClientProtocol = "raw" | "socketio";

export interface WorkerConfig {
  readonly workerIndex: number;
  readonly protocol: ClientProtocol;
  /** Base URLs (`ws://127.0.0.1:9001`); socket i connects to targets[i % targets.length]. */
  readonly targets: readonly string[];
  readonly sockets: number;
  /** HS256 secret the tokens are signed with; each socket gets its own `sub`. */
  readonly jwtSecret: string;
  readonly subPrefix: string;
  readonly channel: string;
  /** When set, socket i subscribes to channels[i % channels.length] instead of `channel`. */
  readonly channels?: readonly string[];
  /** Local addresses to bind (127.0.0.x), used round-robin so no (src, dst) pair runs out of ports. */
  readonly sourceAddresses: readonly string[];
  /** Handshakes in flight at once. */
  readonly concurrency: number;
  /** Upper bound for the whole connect phase. */
  readonly connectBudgetMs: number;
  /** Per-socket retries (connect failures and drops together). */
  readonly maxRetries: number;
  /** Offer permessage-deflate (the compression rows); otherwise the sockets ask for none. */
  readonly offerDeflate: boolean;
}

export type ControllerMessage =
  | { readonly type: "connect"; readonly config: WorkerConfig }
  /** Start counting deliveries; sockets subscribed now are the ones expected to receive everything. */
  | { readonly type: "window" }
  | { readonly type: "count" }
  | { readonly type: "report" }
  | { readonly type: "close" };

export interface ConnectResult {
  readonly established: number;
  readonly failed: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly seconds: number;
}

export interface WorkerStats {
  /** Sockets subscribed when the window opened. */
  readonly subscribedAtWindow: number;
  readonly delivered: number;
  readonly latency: HistogramSnapshot;
  readonly drops: number;
  readonly reconnects: number;
  readonly errors: Readonly<Record<string, number>>;
  /** Bytes read from the sockets' TCP connections since the window opened: frames as sent, compressed or not. */
  readonly wireBytes: number;
  /** Bytes of the message frames delivered in the window, as decoded (decompressed). */
  readonly payloadBytes: number;
  /** This worker's own CPU seconds (user + system) since the window opened. */
  readonly cpuSeconds: number;
  readonly rssBytes: number;
}

export type WorkerMessage =
  | { readonly type: "progress"; readonly established: number; readonly failed: number }
  | { readonly type: "connected"; readonly result: ConnectResult }
  | { readonly type: "window-open" }
  | { readonly type: "count"; readonly delivered: number }
  | { readonly type: "report"; readonly stats: WorkerStats }
  | { readonly type: "closed" };
