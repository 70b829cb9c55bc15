/**
 * The Lua that assigns offsets and publishes, shared by every script that
 * publishes (plain publishes and the round clock's fenced transitions), so
 * offsets are assigned one way only.
 *
 * publish_all(first_key, first_arg) publishes #KEYS - first_key + 1
 * publications whose state keys are KEYS[first_key..] and whose arguments
 * start at ARGV[first_arg]:
 *   ARGV[first_arg]      state TTL in seconds (0 = none)
 *   ARGV[first_arg + 1]  epoch for a channel that has none yet
 *   ARGV[first_arg + 2]  publish time, ms
 *   then per publication: pub/sub channel, frame head
 * It returns offset, epoch pairs. The tail it appends must match
 * encodeFrameTail() in fanout/message-frame.ts.
 */

import { randomBytes } from "node:crypto";
import type { Publication } from "./broker.js";
import { channelStateKey, messageChannelPrefix } from "./redis-keys.js";

export const PUBLISH_ALL_LUA = `
local function publish_all(first_key, first_arg)
  local ttl = tonumber(ARGV[first_arg])
  local fresh_epoch = ARGV[first_arg + 1]
  local ts = ARGV[first_arg + 2]
  local out = {}
  local n = 0
  for i = first_key, #KEYS do
    local key = KEYS[i]
    local a = first_arg + 3 + 2 * n
    local offset = redis.call('HINCRBY', key, 'offset', 1)
    local epoch = redis.call('HGET', key, 'epoch')
    if not epoch then
      epoch = fresh_epoch
      redis.call('HSET', key, 'epoch', epoch)
    end
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    redis.call('PUBLISH', ARGV[a], ARGV[a + 1] .. offset .. ',"epoch":"' .. epoch .. '","ts":' .. ts .. '}')
    out[2 * n + 1] = offset
    out[2 * n + 2] = epoch
    n = n + 1
  end
  return out
end
`;

function newEpoch(): string {
  // base64url has no quote or backslash, so the script can splice it into JSON.
  return randomBytes(6).toString("base64url");
}

export interface PublishScriptArgs {
  readonly keys: string[];
  readonly args: Array<string | number>;
}

/** Keys and arguments for publish_all, to append after a script's own. */
export function publishScriptArgs(prefix: string, ttlSeconds: number, publications: readonly Publication[]): PublishScriptArgs {
  const ts = publications[0]?.ts ?? Date.now();
  const keys: string[] = [];
  const args: Array<string | number> = [ttlSeconds, newEpoch(), ts];
  const channelPrefix = messageChannelPrefix(prefix);
  for (const publication of publications) {
    keys.push(channelStateKey(prefix, publication.channel));
    args.push(channelPrefix + publication.channel, publication.frameHead);
  }
  return { keys, args };
}

/** Offset, epoch pairs from publish_all's reply. */
export function parsePublishReply(reply: ReadonlyArray<string | number>, count: number): Array<{ offset: number; epoch: string }> {
  const outcomes: Array<{ offset: number; epoch: string }> = [];
  for (let i = 0; i < count; i++) outcomes.push({ offset: Number(reply[2 * i]), epoch: String(reply[2 * i + 1]) });
  return outcomes;
}
