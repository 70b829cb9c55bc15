/**
 * History in Redis: the stream publish_all appends to (broker/publish-script.ts),
 * read together with the channel's position in one script.
 */

import { randomFillSync } from "node:crypto";
import { PipelinedScript } from "../redis/pipelined-script.js";
import type { RedisKeyspace } from "../broker/redis-keys.js";
import { readFrameEnvelope } from "../fanout/message-frame.js";
import type { Delivery } from "../broker/broker.js";
import type { RedisClient } from "../redis/connections.js";
import type { ChannelPosition, History, HistorySlice } from "./history.js";

/*
 * KEYS[1] channel state hash, KEYS[2] history stream
 * ARGV[1] since (offset), ARGV[2] limit, ARGV[3] epoch for a channel without
 * one, ARGV[4] state TTL in seconds (0 = none)
 * Returns offset, epoch, then id, frame pairs of the entries after `since`.
 * A channel without an epoch gets one here, exactly as publish_all would
 * give it, so the position a client is told now is the one the next publish
 * continues from.
 */
const HISTORY_SINCE_LUA = `
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then redis.call('DEL', KEYS[1]) end
if redis.call('TYPE', KEYS[2]).ok ~= 'stream' then redis.call('DEL', KEYS[2]) end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  redis.call('HSETNX', KEYS[1], 'offset', 0)
  redis.call('DEL', KEYS[2])
  if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
end
local offset = tonumber(redis.call('HGET', KEYS[1], 'offset'))
local out = { offset, epoch }
local since = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if limit > 0 and since < offset then
  for _, entry in ipairs(redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+', 'COUNT', limit)) do
    out[#out + 1] = entry[1]
    out[#out + 1] = entry[2][2]
  end
end
return out
`;

const HISTORY_SINCE = new PipelinedScript(HISTORY_SINCE_LUA, 2);

export interface RedisHistoryOptions {
  readonly keyspace: RedisKeyspace;
  readonly channelStateTtlSeconds: number;
}

/** Bytes of one fresh epoch (8 characters of base64url). */
const EPOCH_BYTES = 6;

/**
 * Random epochs drawn from a pooled buffer: every read proposes one (for a
 * channel that has none yet), and a node reads once per new user's personal
 * channel, so one crypto call per 512 reads instead of one per read.
 */
class EpochSource {
  private readonly pool = Buffer.alloc(EPOCH_BYTES * 512);
  private next = this.pool.length;

  take(): string {
    if (this.next === this.pool.length) {
      randomFillSync(this.pool);
      this.next = 0;
    }
    const epoch = this.pool.toString("base64url", this.next, this.next + EPOCH_BYTES);
    this.next += EPOCH_BYTES;
    return epoch;
  }
}

export class MalformedHistoryError extends Error {
  override readonly name = "MalformedHistoryError";
}

export class RedisHistory implements History {
  private readonly redis: RedisClient;
  private readonly epochs = new EpochSource();

  /** `redis` is a command connection (pipelining: see PipelinedScript). */
  constructor(
    redis: RedisClient,
    private readonly options: RedisHistoryOptions,
  ) {
    this.redis = redis;
  }

  async since(channel: string, since: number, limit: number): Promise<HistorySlice> {
    const { keyspace, channelStateTtlSeconds } = this.options;
    const epoch = this.epochs.take();
    const reply = await HISTORY_SINCE.runBuffer(this.redis, keyspace.stateKey(channel), keyspace.historyKey(channel), since, limit, epoch, channelStateTtlSeconds);
    if (!Array.isArray(reply)) throw new MalformedHistoryError("unexpected history reply");
    return parseSlice(channel, reply);
  }
}

function parseSlice(channel: string, reply: readonly unknown[]): HistorySlice {
  const [offset, epoch] = reply;
  if (typeof offset !== "number" || !Buffer.isBuffer(epoch)) throw new MalformedHistoryError("unexpected history reply");
  const position: ChannelPosition = { offset, epoch: epoch.toString("latin1") };
  const messages: Delivery[] = [];
  for (let i = 2; i + 1 < reply.length; i += 2) {
    const frame = reply[i + 1];
    if (!Buffer.isBuffer(frame)) throw new MalformedHistoryError("unexpected history entry");
    const envelope = readFrameEnvelope(channel, frame);
    // An entry the gateway did not write ends the usable history there.
    if (envelope === null) break;
    messages.push({ channel, frame, ...envelope });
  }
  return { position, messages };
}
