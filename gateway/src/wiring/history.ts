/**
 * Continuity: what every publish writes (offsets, history, idempotency keys)
 * and the sequencer that keeps each channel gapless on this node, repairing
 * from history what pub/sub lost.
 */

import type { Logger } from "pino";
import type { PublishPolicy } from "../broker/publish-script.js";
import { RedisKeyspace } from "../broker/redis-keys.js";
import type { GatewayConfig } from "../config.js";
import type { LocalFanout } from "../fanout/local-fanout.js";
import { ChannelSequencer, type SequencerMetrics } from "../history/channel-sequencer.js";
import { CoalescedHistory } from "../history/coalesced-history.js";
import type { History } from "../history/history.js";
import { RedisHistory } from "../history/redis-history.js";
import type { ResumeSource } from "../history/resume.js";
import type { ShutdownStep } from "../lifecycle/shutdown.js";
import type { RedisConnections } from "../redis/connections.js";

/** Most messages one gap repair reads; no namespace's history is longer by default. */
const REPAIR_LIMIT = 1000;
/** Most messages one resume replays; a client that missed more reloads (`recovered: false`). */
const REPLAY_LIMIT = 1000;
/** Deliveries held per channel while its gap is repaired (a repair takes one Redis round trip). */
const MAX_HELD = 10_000;
/** Attempts at one history read (with backoff, about 4 s in all) before a channel's subscribers are told to resync. */
const HISTORY_READ_ATTEMPTS = 8;
/** History reads in flight while every channel is compared with Redis after a reconnect. */
const CATCH_UP_CONCURRENCY = 32;

export interface HistoryWiring {
  readonly policy: PublishPolicy;
  readonly history: History;
  readonly sequencer: ChannelSequencer;
  /** What `since` resumes from: history, and the positions the sequencer forwarded. */
  readonly resume: ResumeSource;
  /** Whether history can be read now: the node needs it to seed, repair and resume channels. */
  isReady(): boolean;
  readonly steps: { readonly closeHistory: ShutdownStep };
}

export function wireHistory(config: GatewayConfig, redis: RedisConnections, fanout: LocalFanout, metrics: SequencerMetrics, log: Logger): HistoryWiring {
  const keyspace = new RedisKeyspace(config.redisPrefix, config.personalChannelShards, redis.mode === "cluster" ? "cluster" : "single");
  const policy: PublishPolicy = {
    keyspace,
    channelStateTtlSeconds: config.channelStateTtlSeconds,
    history: config.history,
    idempotencyWindowMs: config.idempotencyWindowMs,
  };
  // Reads only (and an epoch for a channel that has none, idempotently): a read
  // issued while the connection is still coming up waits for it instead of
  // failing a subscribe, and a resend after a reconnect is harmless.
  // A read per channel a node starts to receive (each new user's personal
  // channel seeds its position): pipelined.
  const connection = redis.open("history", { offlineQueue: true, maxRetriesPerRequest: 1, autoPipelining: true });
  const redisHistory = new RedisHistory(connection, { keyspace, channelStateTtlSeconds: config.channelStateTtlSeconds });
  const history = new CoalescedHistory(redisHistory);
  const sequencer = new ChannelSequencer({
    history,
    forward: (delivery) => fanout.deliver(delivery),
    signalGap: (notice) => fanout.signalGap(notice),
    metrics,
    log,
    repairLimit: REPAIR_LIMIT,
    maxHeld: MAX_HELD,
    catchUpConcurrency: CATCH_UP_CONCURRENCY,
    readAttempts: HISTORY_READ_ATTEMPTS,
    pause: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  });
  return {
    policy,
    history,
    sequencer,
    isReady: () => connection.status === "ready",
    resume: { history, forwarded: sequencer, maxMessages: REPLAY_LIMIT, pause: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) },
    steps: {
      closeHistory: {
        name: "close history",
        run: async () => {
          await connection.quit().catch((err: unknown) => log.debug({ err }, "history redis quit failed"));
          connection.disconnect();
        },
      },
    },
  };
}
