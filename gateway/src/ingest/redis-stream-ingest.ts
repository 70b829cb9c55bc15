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
 * - Stream order: a node publishes an entry only once every older entry of
 *   the stream is acknowledged (published or rejected) or pending on itself,
 *   so the competing consumers never overtake each other. A takeover keeps
 *   this: a dead node's entries are older than anything read after them, so
 *   later batches wait for them (up to `claimIdleMs`), and they go out first.
 * - Entries that are not valid publishes are acknowledged, never published,
 *   and copied with a `reason` to `<prefix>:ingest:rejected`.
 */

import { Redis } from "ioredis";
import type { Logger } from "pino";
import type { PublishRequest } from "../../../shared/src/protocol.js";
import { validatePublishBody, type Publisher } from "../fanout/publisher.js";

export const INGEST_GROUP = "gateway";

export function ingestStreamKey(prefix: string): string {
  return `${prefix}:ingest`;
}

export function ingestRejectedKey(prefix: string): string {
  return `${prefix}:ingest:rejected`;
}

/** Why an entry was not published; a metric label, so a closed set. */
export type IngestRejectReason = "bad_json" | "invalid" | "too_large" | "trimmed";

export interface IngestMetrics {
  /** `count` entries were published (a repeat after a takeover counts again). */
  ingested(count: number): void;
  ingestRejected(reason: IngestRejectReason): void;
  /** One loop iteration failed (Redis or publish); it is retried after a backoff. */
  ingestFailed(): void;
  /** `count` entries pending on another consumer for `claimIdleMs` were taken over. */
  ingestClaimed(count: number): void;
}

export interface RedisStreamIngestOptions {
  readonly url: string;
  readonly prefix: string;
  /** Consumer name in the group: the NODE_ID. A node restarted under the same name resumes its own pending entries at once. */
  readonly consumer: string;
  readonly publisher: Pick<Publisher, "publish">;
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
  readonly metrics: IngestMetrics;
  readonly log: Logger;
}

interface StreamEntry {
  readonly id: string;
  /** Field/value pairs, flat; null when the entry was trimmed from the stream while pending. */
  readonly fields: readonly string[] | null;
}

interface Rejection {
  readonly entry: StreamEntry;
  readonly reason: IngestRejectReason;
  readonly message: string;
}

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;
/** Added to blockMs as the client-side bound of every command on the ingest connection. */
const COMMAND_GRACE_MS = 5000;
/** stop() lets a batch that is being published finish this long before cutting the connection. */
const STOP_GRACE_MS = 2000;
const ORDER_POLL_MIN_MS = 1;
const ORDER_POLL_MAX_MS = 50;
const REJECTED_MAXLEN = 10_000;

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

type IngestRedis = Redis & {
  forgetIdleConsumers(numKeys: number, key: string, group: string, idleMs: number, keep: string): Promise<number>;
};

export class RedisStreamIngest {
  private readonly redis: IngestRedis;
  private readonly key: string;
  private readonly rejectedKey: string;
  private readonly done: Promise<void>;
  private stopping = false;
  private blocked = false;
  private wake: (() => void) | null = null;
  private backoffMs = MIN_BACKOFF_MS;
  private groupReady = false;
  /** Read this consumer's own pending entries (id 0) before new ones (`>`). */
  private readPending = true;
  /** Published but not yet acknowledged: acked before anything else is read, so a failed XACK does not publish them twice. */
  private unacked: string[] = [];
  private claimCursor = "0-0";
  private nextClaimAt = 0;
  private stage = "start";

  private constructor(private readonly options: RedisStreamIngestOptions) {
    this.key = ingestStreamKey(options.prefix);
    this.rejectedKey = ingestRejectedKey(options.prefix);
    // Its own connection: a blocking XREADGROUP would stall every command
    // queued behind it on a shared one. Commands fail fast while Redis is
    // away (no offline queue, no retries) and the loop backs off instead.
    this.redis = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.blockMs + COMMAND_GRACE_MS,
    }) as IngestRedis;
    this.redis.defineCommand("forgetIdleConsumers", { lua: FORGET_IDLE_CONSUMERS_LUA });
    this.redis.on("error", (err: Error) => {
      options.log.warn({ err: err.message, role: "ingest" }, "redis connection error");
    });
    this.redis.connect().catch((err: Error) => {
      options.log.warn({ err: err.message, role: "ingest" }, "redis not reachable yet, retrying");
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
        this.backoffMs = MIN_BACKOFF_MS;
      } catch (err) {
        if (this.stopping) break;
        const message = (err as Error).message;
        if (message.startsWith("NOGROUP")) this.groupReady = false;
        // Whatever this iteration held is still pending on us: read it again.
        this.readPending = true;
        this.options.metrics.ingestFailed();
        this.options.log.error({ err: message, stage: this.stage, stream: this.key, retryInMs: this.backoffMs }, "redis ingest failed; retrying");
        await this.pause(this.backoffMs);
        this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
      }
    }
  }

  private async iterate(): Promise<void> {
    if (!this.groupReady) await this.createGroup();
    if (this.unacked.length > 0) {
      this.stage = "ack";
      await this.redis.xack(this.key, INGEST_GROUP, ...this.unacked);
      this.unacked = [];
    }
    // Claim only with nothing of our own pending, so claimed entries are
    // published before they could sit idle long enough to be claimed again.
    if (!this.readPending && Date.now() >= this.nextClaimAt) await this.claimIdle();
    const entries = await this.read();
    if (entries.length === 0) {
      this.readPending = false;
      return;
    }
    const ready = await this.inOrder(entries);
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
      return parseReadReply(await this.redis.call("XREADGROUP", "GROUP", INGEST_GROUP, consumer, "COUNT", maxBatch, "STREAMS", this.key, "0"));
    }
    this.stage = "read";
    this.blocked = true;
    try {
      return parseReadReply(await this.redis.call("XREADGROUP", "GROUP", INGEST_GROUP, consumer, "COUNT", maxBatch, "BLOCK", blockMs, "STREAMS", this.key, ">"));
    } finally {
      this.blocked = false;
    }
  }

  /**
   * The leading part of `entries` that may be published now: those older than
   * every entry pending on another consumer. Waits while that part is empty,
   * taking over the older entries once they are idle for claimIdleMs.
   * Returns [] to make the caller read its pending entries again.
   */
  private async inOrder(entries: readonly StreamEntry[]): Promise<readonly StreamEntry[]> {
    const { consumer, claimIdleMs } = this.options;
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (first === undefined || last === undefined) return entries;
    // Our own pending entries older than `last` are exactly `entries` (we read
    // them oldest first), so one more row than that shows the oldest foreign one.
    const deadline = Date.now() + claimIdleMs / 2;
    let pollMs = ORDER_POLL_MIN_MS;
    while (!this.stopping) {
      this.stage = "order check";
      const rows = parsePendingReply(await this.redis.xpending(this.key, INGEST_GROUP, "-", last.id, entries.length + 1));
      const foreign = rows.find((row) => row.consumer !== consumer);
      if (foreign === undefined) return entries;
      const ready = entries.filter((entry) => compareIds(entry.id, foreign.id) < 0);
      if (ready.length > 0) return ready;
      if (foreign.idleMs >= claimIdleMs) {
        this.stage = "claim";
        // MIN-IDLE makes the takeover atomic: a node that just re-read it keeps it.
        const claimed = await this.redis.xclaim(this.key, INGEST_GROUP, consumer, claimIdleMs, foreign.id, "JUSTID");
        if (Array.isArray(claimed) && claimed.length > 0) {
          this.options.metrics.ingestClaimed(claimed.length);
          this.options.log.warn({ entryId: foreign.id, from: foreign.consumer }, "took over an ingest entry from a consumer that did not acknowledge it");
        }
        return [];
      }
      // Re-reading resets the idle time of our entries, so they are not taken
      // over from us while we wait for a slow node.
      if (Date.now() >= deadline) return [];
      await this.pause(pollMs);
      pollMs = Math.min(ORDER_POLL_MAX_MS, pollMs * 2);
    }
    return [];
  }

  private async process(entries: readonly StreamEntry[]): Promise<void> {
    const valid: Array<{ readonly id: string; readonly request: PublishRequest }> = [];
    const rejected: Rejection[] = [];
    for (const entry of entries) {
      const outcome = this.validate(entry);
      if ("reason" in outcome) rejected.push(outcome);
      else valid.push({ id: entry.id, request: outcome });
    }

    if (rejected.length > 0) {
      this.stage = "reject";
      // Copy and acknowledge together, so a rejected entry is recorded once.
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

    if (valid.length === 0) return;
    this.stage = "publish";
    await this.publish(valid.map(({ request }) => request));
    this.options.metrics.ingested(valid.length);
    this.unacked = valid.map(({ id }) => id);
    this.stage = "ack";
    await this.redis.xack(this.key, INGEST_GROUP, ...this.unacked);
    this.unacked = [];
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
      attempt.catch((late: Error) => this.options.log.debug({ err: late.message }, "timed-out ingest publish failed too"));
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private validate(entry: StreamEntry): PublishRequest | Rejection {
    if (entry.fields === null) return { entry, reason: "trimmed", message: "entry was trimmed from the stream before it was published" };
    const channel = field(entry.fields, "channel");
    const event = field(entry.fields, "event");
    const text = field(entry.fields, "data");
    let data: unknown;
    if (text !== undefined) {
      if (Buffer.byteLength(text) > this.options.maxDataBytes) return { entry, reason: "too_large", message: `data is over ${this.options.maxDataBytes} bytes` };
      try {
        data = JSON.parse(text);
      } catch (err) {
        return { entry, reason: "bad_json", message: `data is not valid JSON: ${(err as Error).message}` };
      }
    }
    const validated = validatePublishBody({ channel, event, data }, { maxBatch: 1, maxDataDepth: this.options.maxDataDepth });
    if (!validated.ok) return { entry, reason: "invalid", message: validated.message.replace(/^body\./, "") };
    const request = validated.requests[0];
    if (request === undefined) return { entry, reason: "invalid", message: "no message" };
    return { ...request, idempotencyKey: `ingest:${entry.id}` };
  }

  private async claimIdle(): Promise<void> {
    const { consumer, claimIdleMs, maxBatch } = this.options;
    this.stage = "claim";
    const reply = await this.redis.xautoclaim(this.key, INGEST_GROUP, consumer, claimIdleMs, this.claimCursor, "COUNT", maxBatch);
    const { cursor, claimed, deleted } = parseAutoclaimReply(reply);
    this.claimCursor = cursor;
    // A full page may have more behind it: look again on the next iteration.
    this.nextClaimAt = cursor === "0-0" ? Date.now() + claimIdleMs / 2 : 0;
    if (claimed > 0) {
      this.readPending = true;
      this.options.metrics.ingestClaimed(claimed);
      this.options.log.warn({ entries: claimed }, "took over ingest entries pending on a consumer that stopped acknowledging");
    }
    if (deleted > 0) {
      for (let i = 0; i < deleted; i++) this.options.metrics.ingestRejected("trimmed");
      this.options.log.warn({ entries: deleted }, "ingest entries were trimmed from the stream before anyone published them");
    }
    if (cursor === "0-0") {
      const forgotten = await this.redis.forgetIdleConsumers(1, this.key, INGEST_GROUP, claimIdleMs * 10, consumer);
      if (forgotten > 0) this.options.log.info({ consumers: forgotten }, "removed idle ingest consumers that held nothing");
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

function field(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** Compares stream ids `ms-seq` numerically; both parts can exceed 2^53. */
export function compareIds(a: string, b: string): number {
  const [aMs = "0", aSeq = "0"] = a.split("-");
  const [bMs = "0", bSeq = "0"] = b.split("-");
  const ms = BigInt(aMs) - BigInt(bMs);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(aSeq) - BigInt(bSeq);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

function parseEntries(value: unknown): StreamEntry[] {
  if (!Array.isArray(value)) throw new Error("unexpected stream entries reply");
  return value.map((raw: unknown) => {
    if (!Array.isArray(raw) || typeof raw[0] !== "string") throw new Error("unexpected stream entry");
    const fields: unknown = raw[1];
    if (fields === null) return { id: raw[0], fields: null };
    if (!isStringArray(fields)) throw new Error("unexpected stream entry fields");
    return { id: raw[0], fields };
  });
}

/** XREADGROUP: null (timed out) or [[key, entries]]. */
function parseReadReply(reply: unknown): StreamEntry[] {
  if (reply === null) return [];
  if (!Array.isArray(reply)) throw new Error("unexpected XREADGROUP reply");
  const stream: unknown = reply[0];
  if (stream === undefined) return [];
  if (!Array.isArray(stream)) throw new Error("unexpected XREADGROUP reply");
  return parseEntries(stream[1]);
}

/** XPENDING with a range: [[id, consumer, idle ms, deliveries], …]. */
function parsePendingReply(reply: unknown): Array<{ readonly id: string; readonly consumer: string; readonly idleMs: number }> {
  if (!Array.isArray(reply)) throw new Error("unexpected XPENDING reply");
  return reply.map((row: unknown) => {
    if (!Array.isArray(row) || typeof row[0] !== "string" || typeof row[1] !== "string" || typeof row[2] !== "number") throw new Error("unexpected XPENDING row");
    return { id: row[0], consumer: row[1], idleMs: row[2] };
  });
}

/** XAUTOCLAIM (Redis ≥ 7): [next cursor, claimed entries, ids deleted from the stream]. */
function parseAutoclaimReply(reply: unknown): { cursor: string; claimed: number; deleted: number } {
  if (!Array.isArray(reply) || typeof reply[0] !== "string") throw new Error("unexpected XAUTOCLAIM reply");
  const deleted: unknown = reply[2];
  return { cursor: reply[0], claimed: parseEntries(reply[1]).length, deleted: Array.isArray(deleted) ? deleted.length : 0 };
}
