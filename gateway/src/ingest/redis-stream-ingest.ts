/**
 * The Redis ingest path: backends that already talk to Redis publish by
 * XADDing `channel`, `event` and `data` (JSON text) to `<prefix>:ingest`.
 * Every node reads that stream through the consumer group `gateway` (its
 * consumer name is its NODE_ID), so each entry goes to one node, which
 * publishes it once through the same Publisher as POST /v1/publish.
 *
 * Guarantees:
 * - Exactly once into the cluster: an entry is acknowledged only after its
 *   publish succeeded, and every entry is published with its stream id as
 *   idempotency key. A node that dies (or stalls for more than `claimIdleMs`)
 *   between publish and XACK leaves the entry pending; another node takes it
 *   over and publishes it again, which the key turns into a no-op as long as
 *   the takeover comes within IDEMPOTENCY_WINDOW_S (default 300 s, against a
 *   claimIdleMs of 30 s).
 * - Stream order: see stream-order.ts. A node publishes an entry only once
 *   every older entry is acknowledged or pending on itself.
 * - Entries that are not valid publishes are acknowledged, never published,
 *   and copied with a `reason` to `<prefix>:ingest:rejected`.
 * - An entry that cannot be published (see publish-attempts.ts) is set aside
 *   the same way after `maxAttempts` failed publishes, so the entries behind
 *   it go out, in order, within seconds instead of never.
 *
 * This module is the loop: read, order, validate, publish, acknowledge, and
 * back off on failure. Reply parsing is in stream-replies.ts, validation in
 * entry-validation.ts, ordering and takeovers in stream-order.ts.
 */

import type { Logger } from "pino";
import type { PublishRequest } from "../../../shared/src/protocol.js";
import type { RedisClient, RedisConnections } from "../redis/connections.js";
import { RetryBackoff } from "../time/retry-backoff.js";
import { isRejection, validateEntry, type Rejection } from "./entry-validation.js";
import type { IngestMetrics } from "./ingest-metrics.js";
import { PublishAttempts } from "./publish-attempts.js";
import { INGEST_GROUP, StreamOrder } from "./stream-order.js";
import { parseReadReply, type StreamEntry } from "./stream-replies.js";

export { INGEST_GROUP };

export function ingestStreamKey(prefix: string): string {
  return `${prefix}:ingest`;
}

/**
 * Where rejected entries are copied. On a Redis Cluster the name carries the
 * stream's name as its hash tag, so the copy and the acknowledgement (one
 * MULTI) touch one slot: `{<prefix>:ingest}:rejected`.
 */
export function ingestRejectedKey(prefix: string, cluster = false): string {
  return cluster ? `{${ingestStreamKey(prefix)}}:rejected` : `${ingestStreamKey(prefix)}:rejected`;
}

/** Where ingested entries go: the node's Publisher. */
export interface IngestPublisher {
  /** Rejects when the batch was not published (an earlier part of it may have been: entries carry idempotency keys). */
  publish(requests: readonly PublishRequest[]): Promise<unknown>;
  /** Whether the bus works now; a publish that fails while it does not is not held against its entries. */
  isReady(): boolean;
}

/** A valid entry on its way to the publisher. */
interface Publishable {
  readonly entry: StreamEntry;
  readonly request: PublishRequest;
}

export interface RedisStreamIngestOptions {
  readonly redis: RedisConnections;
  readonly prefix: string;
  /** Consumer name in the group: the NODE_ID. A node restarted under the same name resumes its own pending entries at once. */
  readonly consumer: string;
  readonly publisher: IngestPublisher;
  /** Entries per read, and so the most messages in one atomic publish. */
  readonly maxBatch: number;
  /** How long one read waits for new entries; also bounds how late a takeover check runs. */
  readonly blockMs: number;
  /** Entries pending on another consumer this long are taken over. Keep it well above a publish's duration. */
  readonly claimIdleMs: number;
  /** Largest `data` field, in bytes; a larger entry is rejected (too_large). */
  readonly maxDataBytes: number;
  /** Deepest nesting of `data` (MAX_JSON_DEPTH); a deeper entry is rejected (invalid). */
  readonly maxDataDepth: number;
  /** Failed publishes of a batch before its entries go out one at a time, and one that fails alone is set aside (INGEST_MAX_ATTEMPTS). */
  readonly maxAttempts: number;
  readonly metrics: IngestMetrics;
  readonly log: Logger;
}

const MAX_BACKOFF_MS = 5000;
/** Added to blockMs as the client-side bound of every command on the ingest connection. */
const COMMAND_GRACE_MS = 5000;
/** stop() lets a batch that is being published finish this long before cutting the connection. */
const STOP_GRACE_MS = 2000;
const REJECTED_MAXLEN = 10_000;

export class RedisStreamIngest {
  private readonly redis: RedisClient;
  private readonly order: StreamOrder;
  private readonly key: string;
  private readonly rejectedKey: string;
  private readonly done: Promise<void>;
  private readonly backoff = new RetryBackoff({ initialDelayMs: 100, maxDelayMs: MAX_BACKOFF_MS });
  private stopping = false;
  private blocked = false;
  private wake: (() => void) | null = null;
  private groupReady = false;
  /** Read this consumer's own pending entries (id 0) before new ones (`>`). */
  private readPending = true;
  /** Published but not yet acknowledged: acked before anything else is read, so a failed XACK does not publish them twice. */
  private unacked: string[] = [];
  private readonly attempts: PublishAttempts;
  private stage = "start";

  private constructor(private readonly options: RedisStreamIngestOptions) {
    this.key = ingestStreamKey(options.prefix);
    this.rejectedKey = ingestRejectedKey(options.prefix, options.redis.mode === "cluster");
    this.attempts = new PublishAttempts(options.maxAttempts);
    // Its own connection: a blocking XREADGROUP would stall every command
    // queued behind it on a shared one. Commands fail fast while Redis is
    // away (no offline queue, no retries) and the loop backs off instead.
    this.redis = options.redis.open("ingest", { offlineQueue: false, maxRetriesPerRequest: 0, commandTimeoutMs: options.blockMs + COMMAND_GRACE_MS });
    this.order = new StreamOrder({
      redis: this.redis,
      key: this.key,
      consumer: options.consumer,
      claimIdleMs: options.claimIdleMs,
      maxBatch: options.maxBatch,
      metrics: options.metrics,
      log: options.log,
      step: (name) => (this.stage = name),
      stopping: () => this.stopping,
      pause: (ms) => this.pause(ms),
    });
    this.done = this.run();
  }

  /** Starts consuming at once; a Redis that is not up yet is retried with backoff. */
  static start(options: RedisStreamIngestOptions): RedisStreamIngest {
    return new RedisStreamIngest(options);
  }

  /**
   * Ends the loop without waiting for a read to time out. A batch being
   * published gets STOP_GRACE_MS to be acknowledged; whatever stays pending is
   * resumed by this consumer name or taken over by another node. Idempotent.
   */
  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.wake?.();
      // Only the read may be cut at once: cutting an XACK would publish its batch again.
      if (this.blocked) this.redis.disconnect();
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.done, new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)))]);
    clearTimeout(timer);
    this.redis.disconnect();
    await this.done;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.redis.status !== "ready") {
        // Commands would only fail fast; the connection's error events say why.
        await this.readyOrPause(MAX_BACKOFF_MS);
        this.readPending = true;
        continue;
      }
      try {
        await this.iterate();
        this.backoff.reset();
      } catch (err) {
        if (this.stopping) break;
        if ((err as Error).message.startsWith("NOGROUP")) this.groupReady = false;
        // Whatever this iteration held is still pending on us: read it again.
        this.readPending = true;
        this.options.metrics.ingestFailed();
        const retryInMs = this.backoff.next();
        this.options.log.error({ err, stage: this.stage, stream: this.key, retryInMs }, "redis ingest failed; retrying");
        await this.pause(retryInMs);
      }
    }
  }

  private async iterate(): Promise<void> {
    if (!this.groupReady) await this.createGroup();
    await this.ackUnacked();
    // Claim only with nothing of our own pending (see StreamOrder.claimIdle).
    if (!this.readPending && this.order.claimDue() && (await this.order.claimIdle())) this.readPending = true;
    const entries = await this.read();
    if (entries.length === 0) {
      this.readPending = false;
      return;
    }
    const ready = await this.order.inOrder(entries);
    if (ready.length < entries.length) this.readPending = true;
    if (ready.length > 0) await this.process(ready);
  }

  private async createGroup(): Promise<void> {
    this.stage = "create group";
    try {
      // `$`: a new group starts at the end, so a recreated group never replays old entries.
      await this.redis.xgroup("CREATE", this.key, INGEST_GROUP, "$", "MKSTREAM");
    } catch (err) {
      if (!(err as Error).message.startsWith("BUSYGROUP")) throw err;
    }
    this.groupReady = true;
  }

  private async read(): Promise<StreamEntry[]> {
    const { consumer, maxBatch, blockMs } = this.options;
    if (this.readPending) {
      this.stage = "read pending";
      return parseReadReply(await this.redis.callBuffer("XREADGROUP", "GROUP", INGEST_GROUP, consumer, "COUNT", maxBatch, "STREAMS", this.key, "0"));
    }
    this.stage = "read";
    this.blocked = true;
    try {
      // As bytes, so a value that is not UTF-8 is seen as such (stream-replies.ts).
      return parseReadReply(await this.redis.callBuffer("XREADGROUP", "GROUP", INGEST_GROUP, consumer, "COUNT", maxBatch, "BLOCK", blockMs, "STREAMS", this.key, ">"));
    } finally {
      this.blocked = false;
    }
  }

  private async process(entries: readonly StreamEntry[]): Promise<void> {
    const valid: Publishable[] = [];
    const rejected: Rejection[] = [];
    for (const entry of entries) {
      const outcome = validateEntry(entry, this.options);
      if (isRejection(outcome)) rejected.push(outcome);
      else valid.push({ entry, request: outcome });
    }
    if (rejected.length > 0) await this.reject(rejected);
    const ids = valid.map(({ entry }) => entry.id);
    this.attempts.keepOnly(ids);
    if (valid.length === 0) return;
    if (this.attempts.mustIsolate(ids)) {
      await this.publishOneByOne(valid);
      return;
    }
    this.stage = "publish";
    await this.publishCounted(valid);
    this.options.metrics.ingested(valid.length);
    this.unacked = ids;
    await this.ackUnacked();
  }

  /**
   * The batch failed maxAttempts times: each entry goes out on its own, in
   * stream order, and the one that fails alone is set aside with the error,
   * so everything behind it is published now. While the broker is not ready
   * nothing is set aside: the failure is thrown and retried as a whole.
   */
  private async publishOneByOne(valid: readonly Publishable[]): Promise<void> {
    this.options.log.warn({ entries: valid.length, first: valid[0]?.entry.id, stream: this.key }, "ingest batch keeps failing; publishing its entries one by one");
    for (const item of valid) {
      this.stage = "publish one";
      try {
        await this.publishCounted([item]);
      } catch (err) {
        if (!this.options.publisher.isReady()) throw err;
        const attempts = this.attempts.count(item.entry.id);
        this.options.log.error({ err, entryId: item.entry.id, attempts, stream: this.key }, "ingest entry cannot be published; setting it aside");
        await this.reject([{ entry: item.entry, reason: "publish_failed", message: `publish failed ${attempts} times, the last alone: ${(err as Error).message}` }]);
        continue;
      }
      this.options.metrics.ingested(1);
      this.unacked.push(item.entry.id);
    }
    await this.ackUnacked();
  }

  /** publish(), with a failure counted against each entry while the broker is ready. */
  private async publishCounted(items: readonly Publishable[]): Promise<void> {
    try {
      await this.publish(items.map(({ request }) => request));
    } catch (err) {
      if (this.options.publisher.isReady()) this.attempts.failed(items.map(({ entry }) => entry.id));
      throw err;
    }
  }

  private async ackUnacked(): Promise<void> {
    if (this.unacked.length === 0) return;
    this.stage = "ack";
    await this.redis.xack(this.key, INGEST_GROUP, ...this.unacked);
    this.unacked = [];
  }

  /** Copies and acknowledges together, so a rejected entry is recorded once. */
  private async reject(rejected: readonly Rejection[]): Promise<void> {
    this.stage = "reject";
    const tx = this.redis.multi();
    for (const { entry, reason, message } of rejected) {
      tx.xadd(this.rejectedKey, "MAXLEN", "~", REJECTED_MAXLEN, "*", ...(entry.fields ?? []), "reason", message, "code", reason, "entry_id", entry.id, "node", this.options.consumer);
    }
    tx.xack(this.key, INGEST_GROUP, ...rejected.map(({ entry }) => entry.id));
    const results = await tx.exec();
    const failure = results?.find(([err]) => err !== null)?.[0];
    if (results === null || failure) throw failure ?? new Error("ingest reject transaction aborted");
    for (const { reason } of rejected) this.options.metrics.ingestRejected(reason);
    this.options.log.warn({ rejected: rejected.length, stream: this.rejectedKey, first: rejected[0]?.message }, "ingest entries rejected");
  }

  /** One atomic publish, bounded so a hung broker cannot stall the loop past the takeover time. */
  private async publish(requests: readonly PublishRequest[]): Promise<void> {
    const timeoutMs = Math.max(1, Math.min(MAX_BACKOFF_MS, this.options.claimIdleMs / 2));
    const attempt = this.options.publisher.publish(requests);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`publish did not settle within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([attempt, timeout]);
    } catch (err) {
      // A late success still counts as published; the entries stay pending
      // and go out again, which at-least-once allows.
      attempt.catch((late: unknown) => this.options.log.debug({ err: late }, "timed-out ingest publish failed too"));
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves when the connection is ready, after `ms`, or on stop(). */
  private readyOrPause(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    const onReady = (): void => this.wake?.();
    this.redis.once("ready", onReady);
    return this.pause(ms).finally(() => this.redis.off("ready", onReady));
  }

  private pause(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(finish, ms);
      this.wake = finish;
    });
  }
}
