/**
 * The Lua that assigns offsets, keeps history and publishes, shared by every
 * script that publishes (plain publishes and the round clock's fenced
 * transitions), so offsets are assigned one way only.
 *
 * publish_all(first_key, first_arg) publishes (#KEYS - first_key + 1) / 3
 * publications. Each has three keys from KEYS[first_key] on: its channel
 * state hash (offset, epoch), its history stream, and its idempotency key.
 * Arguments from ARGV[first_arg]:
 *   state TTL in seconds (0 = none), epoch for a channel that has none yet,
 *   publish time (ms), idempotency window (ms),
 *   then per publication: pub/sub channel, frame head, history size,
 *   history TTL (s), '1' when it carries an idempotency key else '0'.
 * It returns offset, epoch, duplicate (0/1) triples. A publication whose
 * idempotency key was seen within the window publishes nothing and returns
 * the first one's offset and epoch with duplicate = 1.
 *
 * History is a stream whose entry ids are `<offset>-0`, so "everything after
 * offset K" is one XRANGE. A new epoch deletes the old history: its offsets
 * start again at 1. The tail it appends must match encodeFrameTail() in
 * fanout/message-frame.ts.
 *
 * Redis does not roll a script back when a command fails half-way, so every
 * key is checked (and a foreign-typed one replaced) before anything is
 * written: a batch is published whole or not at all.
 *
 * On a Redis Cluster a script may touch one slot only, and publishes with
 * SPUBLISH (sharded pub/sub) so a message stays inside its shard: the
 * callers split batches per slot (see publicationsBySlot).
 */

import { randomBytes } from "node:crypto";
import type { HistoryPolicy } from "../history/history-policy.js";
import { keySlot } from "../redis/key-slot.js";
import type { Publication, PublishOutcome } from "./broker.js";
import type { RedisKeyspace } from "./redis-keys.js";

const PUBLISH_ALL_LUA = `
local function reset_if_foreign(key, kind)
  local found = redis.call('TYPE', key).ok
  if found ~= 'none' and found ~= kind then redis.call('DEL', key) end
end

local function publish_all(first_key, first_arg)
  local state_ttl = tonumber(ARGV[first_arg])
  local fresh_epoch = ARGV[first_arg + 1]
  local ts = ARGV[first_arg + 2]
  local idempotency_ms = ARGV[first_arg + 3]
  for i = first_key, #KEYS, 3 do
    reset_if_foreign(KEYS[i], 'hash')
    reset_if_foreign(KEYS[i + 1], 'stream')
    reset_if_foreign(KEYS[i + 2], 'string')
  end
  local out = {}
  local n = 0
  for i = first_key, #KEYS, 3 do
    local state, history, once = KEYS[i], KEYS[i + 1], KEYS[i + 2]
    local a = first_arg + 4 + 5 * n
    local keyed = ARGV[a + 4] == '1'
    local seen = false
    if keyed then seen = redis.call('GET', once) end
    if seen then
      local colon = string.find(seen, ':', 1, true)
      out[3 * n + 1] = tonumber(string.sub(seen, 1, colon - 1))
      out[3 * n + 2] = string.sub(seen, colon + 1)
      out[3 * n + 3] = 1
    else
      local offset = redis.call('HINCRBY', state, 'offset', 1)
      local epoch = redis.call('HGET', state, 'epoch')
      if not epoch then
        epoch = fresh_epoch
        redis.call('HSET', state, 'epoch', epoch)
        redis.call('DEL', history)
      end
      if state_ttl > 0 then redis.call('EXPIRE', state, state_ttl) end
      local frame = ARGV[a + 1] .. offset .. ',"epoch":"' .. epoch .. '","ts":' .. ts .. '}'
      local size = tonumber(ARGV[a + 2])
      if size > 0 then
        redis.call('XADD', history, 'MAXLEN', size, offset .. '-0', 'f', frame)
        redis.call('EXPIRE', history, ARGV[a + 3])
      else
        redis.call('DEL', history)
      end
      redis.call('PUBLISH', ARGV[a], frame)
      if keyed then redis.call('SET', once, offset .. ':' .. epoch, 'PX', idempotency_ms) end
      out[3 * n + 1] = offset
      out[3 * n + 2] = epoch
      out[3 * n + 3] = 0
    end
    n = n + 1
  end
  return out
end
`;

/** publish_all(), publishing with PUBLISH on one server and SPUBLISH on a Cluster. */
export function publishAllLua(keyspace: RedisKeyspace): string {
  return PUBLISH_ALL_LUA.replace("'PUBLISH'", keyspace.shardedPubSub ? "'SPUBLISH'" : "'PUBLISH'");
}

/** What publish_all needs to know besides the publications. */
export interface PublishPolicy {
  /** Where each channel's state, history, idempotency keys and bus channel live. */
  readonly keyspace: RedisKeyspace;
  /** Channel offsets and epochs expire after this long without a publish; 0 keeps them. */
  readonly channelStateTtlSeconds: number;
  readonly history: HistoryPolicy;
  /** How long an idempotency key is remembered. */
  readonly idempotencyWindowMs: number;
}

function newEpoch(): string {
  // base64url has no quote or backslash, so the script can splice it into JSON.
  return randomBytes(6).toString("base64url");
}

export interface PublishScriptArgs {
  readonly keys: string[];
  readonly args: Array<string | number>;
}

/** Keys and arguments for publish_all, to append after a script's own. */
export function publishScriptArgs(policy: PublishPolicy, publications: readonly Publication[]): PublishScriptArgs {
  const { keyspace } = policy;
  const ts = publications[0]?.ts ?? Date.now();
  const keys: string[] = [];
  const args: Array<string | number> = [policy.channelStateTtlSeconds, newEpoch(), ts, policy.idempotencyWindowMs];
  for (const publication of publications) {
    const { channel, idempotencyKey: key } = publication;
    const history = policy.history.limitsFor(channel);
    keys.push(keyspace.stateKey(channel), keyspace.historyKey(channel), keyspace.idempotencyKey(channel, key ?? ""));
    args.push(keyspace.busChannel(channel), publication.frameHead, history.size, history.ttlSeconds, key === undefined ? "0" : "1");
  }
  return { keys, args };
}

/** Offset, epoch and duplicate flag of each publication, from publish_all's reply. */
export function parsePublishReply(reply: ReadonlyArray<string | number>, count: number): PublishOutcome[] {
  const outcomes: PublishOutcome[] = [];
  for (let i = 0; i < count; i++) {
    outcomes.push({ offset: Number(reply[3 * i]), epoch: String(reply[3 * i + 1]), duplicate: Number(reply[3 * i + 2]) === 1 });
  }
  return outcomes;
}

/** Publications whose keys share a Cluster slot, by their positions in the batch. */
export interface SlotGroup {
  readonly slot: number;
  readonly positions: number[];
}

/**
 * The positions of `publications` grouped by the Cluster slot of their
 * channel's keys, in order of first appearance; one group on one server,
 * where a script may touch any key.
 */
export function publicationsBySlot(keyspace: RedisKeyspace, publications: readonly Publication[]): SlotGroup[] {
  if (!keyspace.shardedPubSub) return [{ slot: 0, positions: publications.map((_, i) => i) }];
  const groups = new Map<number, SlotGroup>();
  publications.forEach((publication, i) => {
    const slot = keySlot(keyspace.tag(publication.channel));
    const group = groups.get(slot);
    if (group === undefined) groups.set(slot, { slot, positions: [i] });
    else group.positions.push(i);
  });
  return [...groups.values()];
}
