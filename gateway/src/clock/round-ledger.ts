/**
 * The round clock's state in Redis: the authority lease with its fencing
 * token, the current round, and the fenced scripts that change the round and
 * announce the change in one atomic step. A node that lost the lease (paused,
 * partitioned, slow) cannot write or broadcast anything: Redis checks the
 * lease value inside the same script that publishes.
 */

import type { Logger } from "pino";
import type { Publication, PublishOutcome } from "../broker/broker.js";
import { parsePublishReply, publishAllLua, publishScriptArgs, type PublishPolicy } from "../broker/publish-script.js";
import type { RedisClient, RedisConnections } from "../redis/connections.js";
import { decodeState, encodeState, type RoundPhase, type RoundState } from "./round-schedule.js";

/** The lease moved to another node: stop acting as the authority at once. */
export class FencedError extends Error {
  constructor() {
    super("round clock lease lost");
    this.name = "FencedError";
  }
}

/** The stored round is not the one the caller expected to change. */
export class RoundConflictError extends Error {
  constructor() {
    super("round state changed underneath");
    this.name = "RoundConflictError";
  }
}

const ACQUIRE_LUA = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. ':' .. token
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
`;

const RENEW_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/*
 * On a Redis Cluster every key here shares the `race` channel's slot
 * (RedisKeyspace.clockKey), and the clock publishes on `race` only.
 *
 * KEYS[1] lease, KEYS[2] round hash, KEYS[3..] channel state keys
 * ARGV[1] lease value
 * ARGV[2] '1' to compare-and-set the round, '0' to publish only
 * ARGV[3] expected round id ('' = none), ARGV[4] expected phase ('' = none)
 * ARGV[5] number of field/value pairs n, then the pairs, then publish_all's arguments
 */
const FENCED_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED') end
local n = tonumber(ARGV[5])
if ARGV[2] == '1' then
  local id = redis.call('HGET', KEYS[2], 'id') or ''
  local phase = redis.call('HGET', KEYS[2], 'phase') or ''
  if id ~= ARGV[3] or phase ~= ARGV[4] then return redis.error_reply('CONFLICT') end
  local fields = {}
  for i = 1, n * 2 do fields[i] = ARGV[5 + i] end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], unpack(fields))
end
return publish_all(3, 6 + n * 2)
`;

type LedgerRedis = RedisClient & {
  clockAcquire(lease: string, fence: string, node: string, ttlMs: number): Promise<string | null>;
  clockRenew(lease: string, value: string, ttlMs: number): Promise<number>;
  clockRelease(lease: string, value: string): Promise<number>;
  clockFenced(numKeys: number, ...args: Array<string | number>): Promise<Array<string | number>>;
};

export interface RoundLedgerOptions {
  readonly redis: RedisConnections;
  /** The same publish policy as the broker's: race events get offsets and history like any publish. */
  readonly policy: PublishPolicy;
  readonly log: Logger;
}

export interface ExpectedRound {
  readonly id: number;
  readonly phase: RoundPhase;
}

export class RoundLedger {
  private readonly redis: LedgerRedis;
  private readonly leaseKey: string;
  private readonly fenceKey: string;
  private readonly roundKey: string;

  constructor(private readonly options: RoundLedgerOptions) {
    const { keyspace } = options.policy;
    this.leaseKey = keyspace.clockKey("lease");
    this.fenceKey = keyspace.clockKey("fence");
    this.roundKey = keyspace.clockKey("round");
    // Fail fast while Redis is away: the clock retries on its own schedule,
    // and a queued command could run after the lease has moved on.
    // A fenced publish whose reply was lost is not resent either: it may have run.
    this.redis = options.redis.open("clock", { offlineQueue: false, maxRetriesPerRequest: 1, resendUnanswered: false }) as LedgerRedis;
    this.redis.defineCommand("clockAcquire", { numberOfKeys: 2, lua: ACQUIRE_LUA });
    this.redis.defineCommand("clockRenew", { numberOfKeys: 1, lua: RENEW_LUA });
    this.redis.defineCommand("clockRelease", { numberOfKeys: 1, lua: RELEASE_LUA });
    this.redis.defineCommand("clockFenced", { lua: `${publishAllLua(keyspace)}${FENCED_LUA}` });
  }

  /** The lease value ("node:fence") when this node became the authority, else null. */
  async acquire(nodeId: string, ttlMs: number): Promise<string | null> {
    return this.redis.clockAcquire(this.leaseKey, this.fenceKey, nodeId, ttlMs);
  }

  async renew(lease: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.clockRenew(this.leaseKey, lease, ttlMs)) === 1;
  }

  async release(lease: string): Promise<void> {
    await this.redis.clockRelease(this.leaseKey, lease);
  }

  async read(): Promise<RoundState | null> {
    return decodeState(await this.redis.hgetall(this.roundKey));
  }

  /**
   * Replaces the round with `next` if the stored one is still `expected`, and
   * publishes in the same atomic step. Throws FencedError or RoundConflictError.
   */
  async transition(lease: string, expected: ExpectedRound | null, next: RoundState, publications: readonly Publication[]): Promise<PublishOutcome[]> {
    const fields = Object.entries(encodeState(next)).flat();
    return this.fenced(lease, ["1", expected === null ? "" : String(expected.id), expected?.phase ?? "", fields.length / 2, ...fields], publications);
  }

  /** Publishes only while `lease` is still the current lease. */
  async publish(lease: string, publications: readonly Publication[]): Promise<PublishOutcome[]> {
    return this.fenced(lease, ["0", "", "", 0], publications);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch((err: Error) => this.options.log.debug({ err }, "clock redis quit failed"));
    this.redis.disconnect();
  }

  private async fenced(lease: string, head: Array<string | number>, publications: readonly Publication[]): Promise<PublishOutcome[]> {
    const { keys, args } = publishScriptArgs(this.options.policy, publications);
    try {
      const reply = await this.redis.clockFenced(2 + keys.length, this.leaseKey, this.roundKey, ...keys, lease, ...head, ...args);
      return parsePublishReply(reply, publications.length);
    } catch (err) {
      const message = (err as Error).message;
      if (message.startsWith("FENCED")) throw new FencedError();
      if (message.startsWith("CONFLICT")) throw new RoundConflictError();
      throw err;
    }
  }
}
