/**
 * Stream order among competing consumers, and takeovers. A consumer may
 * publish an entry only once every older entry of the stream is acknowledged
 * or pending on itself; entries left pending by a consumer that stopped
 * answering for `claimIdleMs` are taken over, and being older, go out first.
 */

import type { Logger } from "pino";
import type { RedisClient } from "../redis/connections.js";
import type { IngestMetrics } from "./ingest-metrics.js";
import { compareIds, parseAutoclaimReply, parsePendingReply, type StreamEntry } from "./stream-replies.js";

export const INGEST_GROUP = "gateway";

const ORDER_POLL_MIN_MS = 1;
const ORDER_POLL_MAX_MS = 50;

/**
 * Removes consumers that hold nothing and have not read for ARGV[2] ms:
 * NODE_ID defaults to hostname-pid, so every restart would otherwise leave a
 * consumer behind. A script, so a consumer cannot read between the check and
 * the delete (DELCONSUMER drops pending entries).
 */
const FORGET_IDLE_CONSUMERS_LUA = `
local removed = 0
for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local consumer = {}
  for i = 1, #info, 2 do consumer[info[i]] = info[i + 1] end
  if consumer['pending'] == 0 and consumer['idle'] >= tonumber(ARGV[2]) and consumer['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], consumer['name'])
    removed = removed + 1
  end
end
return removed`;

type OrderRedis = RedisClient & {
  forgetIdleConsumers(numKeys: number, key: string, group: string, idleMs: number, keep: string): Promise<number>;
};

export interface StreamOrderOptions {
  /** The ingest's own connection. */
  readonly redis: RedisClient;
  readonly key: string;
  readonly consumer: string;
  readonly claimIdleMs: number;
  /** Most entries taken over in one XAUTOCLAIM. */
  readonly maxBatch: number;
  readonly metrics: Pick<IngestMetrics, "ingestClaimed" | "ingestRejected">;
  readonly log: Logger;
  /** Names the Redis step under way, for the loop's error log. */
  readonly step: (name: string) => void;
  /** Whether the loop is stopping: waits end early. */
  readonly stopping: () => boolean;
  /** A pause that the loop's stop() cuts short. */
  readonly pause: (ms: number) => Promise<void>;
}

export class StreamOrder {
  private readonly redis: OrderRedis;
  private claimCursor = "0-0";
  private nextClaimAt = 0;

  constructor(private readonly options: StreamOrderOptions) {
    this.redis = options.redis as OrderRedis;
    this.redis.defineCommand("forgetIdleConsumers", { lua: FORGET_IDLE_CONSUMERS_LUA });
  }

  /** Whether claimIdle() should look for abandoned entries now. */
  claimDue(): boolean {
    return Date.now() >= this.nextClaimAt;
  }

  /**
   * The leading part of `entries` (this consumer's, oldest first) that may be
   * published now: those older than every entry pending on another consumer.
   * Waits while that part is empty, taking over the older entries once they
   * are idle for claimIdleMs. Returns [] to make the caller read its pending
   * entries again.
   */
  async inOrder(entries: readonly StreamEntry[]): Promise<readonly StreamEntry[]> {
    const { redis, key, consumer, claimIdleMs } = this.options;
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (first === undefined || last === undefined) return entries;
    // Our own pending entries older than `last` are exactly `entries` (we read
    // them oldest first), so one more row than that shows the oldest foreign one.
    const deadline = Date.now() + claimIdleMs / 2;
    let pollMs = ORDER_POLL_MIN_MS;
    while (!this.options.stopping()) {
      this.options.step("order check");
      const rows = parsePendingReply(await redis.xpending(key, INGEST_GROUP, "-", last.id, entries.length + 1));
      const foreign = rows.find((row) => row.consumer !== consumer);
      if (foreign === undefined) return entries;
      const ready = entries.filter((entry) => compareIds(entry.id, foreign.id) < 0);
      if (ready.length > 0) return ready;
      if (foreign.idleMs >= claimIdleMs) {
        this.options.step("claim");
        // MIN-IDLE makes the takeover atomic: a node that just re-read it keeps it.
        const claimed = await redis.xclaim(key, INGEST_GROUP, consumer, claimIdleMs, foreign.id, "JUSTID");
        if (Array.isArray(claimed) && claimed.length > 0) {
          this.options.metrics.ingestClaimed(claimed.length);
          this.options.log.warn({ entryId: foreign.id, from: foreign.consumer }, "took over an ingest entry from a consumer that did not acknowledge it");
        }
        return [];
      }
      // Re-reading resets the idle time of our entries, so they are not taken
      // over from us while we wait for a slow node.
      if (Date.now() >= deadline) return [];
      await this.options.pause(pollMs);
      pollMs = Math.min(ORDER_POLL_MAX_MS, pollMs * 2);
    }
    return [];
  }

  /**
   * Takes over entries pending on other consumers for claimIdleMs, a page at
   * a time, and forgets consumers that hold nothing. Returns whether
   * anything was taken over (then this consumer must read its pending
   * entries). Call it only with nothing of our own pending, so claimed
   * entries are published before they could sit idle long enough to be
   * claimed again.
   */
  async claimIdle(): Promise<boolean> {
    const { key, consumer, claimIdleMs, maxBatch } = this.options;
    const redis = this.redis;
    this.options.step("claim");
    const reply = await redis.xautoclaim(key, INGEST_GROUP, consumer, claimIdleMs, this.claimCursor, "COUNT", maxBatch);
    const { cursor, claimed, deleted } = parseAutoclaimReply(reply);
    this.claimCursor = cursor;
    // A full page may have more behind it: look again on the next iteration.
    this.nextClaimAt = cursor === "0-0" ? Date.now() + claimIdleMs / 2 : 0;
    if (claimed > 0) {
      this.options.metrics.ingestClaimed(claimed);
      this.options.log.warn({ entries: claimed }, "took over ingest entries pending on a consumer that stopped acknowledging");
    }
    if (deleted > 0) {
      for (let i = 0; i < deleted; i++) this.options.metrics.ingestRejected("trimmed");
      this.options.log.warn({ entries: deleted }, "ingest entries were trimmed from the stream before anyone published them");
    }
    if (cursor === "0-0") {
      const forgotten = await redis.forgetIdleConsumers(1, key, INGEST_GROUP, claimIdleMs * 10, consumer);
      if (forgotten > 0) this.options.log.info({ consumers: forgotten }, "removed idle ingest consumers that held nothing");
    }
    return claimed > 0;
  }
}
