/**
 * Channel names and the rules that decide who may subscribe.
 *
 * Names are restricted to a printable ASCII set so they can be used unescaped as
 * uWebSockets.js topics, Redis channel suffixes and log fields.
 */

export const MAX_CHANNEL_LENGTH = 128;

const CHANNEL_PATTERN = /^[A-Za-z0-9_\-.:@|=+/]+$/;

/** Channels every authenticated user may subscribe to. */
export const PUBLIC_CHANNELS: ReadonlySet<string> = new Set(["race", "forecasts"]);

/** Prefixes of public channel families: `forecasts:<asset>`. */
export const PUBLIC_CHANNEL_PREFIXES: readonly string[] = ["forecasts:"];

/** The round clock's channel: `timer_update`, `race_sync` and the round lifecycle events. */
export const RACE_CHANNEL = "race";

/**
 * Channels only the round authority publishes to, through its own fenced
 * script. The publish API and the ingest stream refuse them, so no backend
 * key can forge a round event.
 */
export const ROUND_AUTHORITY_CHANNELS: ReadonlySet<string> = new Set([RACE_CHANNEL]);

/** Namespace of a channel prefix for personal channels: `user:<sub>`. */
export const USER_CHANNEL_PREFIX = "user:";

/** Longest `sub`: `user:<sub>` must still be a channel name. */
export const MAX_SUB_LENGTH = MAX_CHANNEL_LENGTH - USER_CHANNEL_PREFIX.length;

/**
 * The channel-name set without `:`: a sub can never name a channel below
 * another user's personal channel (`sub=alice:orders` would own
 * `user:alice:orders`).
 */
const SUB_PATTERN = /^[A-Za-z0-9_\-.@|=+/]+$/;

/** A wildcard grant ends at a namespace boundary: `odds:*`. */
const WILDCARD_SUFFIX = ":*";

export function userChannel(sub: string): string {
  return `${USER_CHANNEL_PREFIX}${sub}`;
}

export function isValidChannelName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_CHANNEL_LENGTH && CHANNEL_PATTERN.test(name);
}

/** A token subject the gateway accepts: 1–123 characters of A-Z a-z 0-9 _ - . @ | = + /. */
export function isValidSub(sub: string): boolean {
  return sub.length > 0 && sub.length <= MAX_SUB_LENGTH && SUB_PATTERN.test(sub);
}

/** Whether `channel` lies in the personal namespace (`user:…`), whoever it belongs to. */
export function isPersonalChannel(channel: string): boolean {
  return channel.startsWith(USER_CHANNEL_PREFIX);
}

/**
 * The part of a channel name before the first `:`; used as a low-cardinality
 * metric label so per-user channels never explode label sets.
 */
export function channelNamespace(name: string): string {
  const colon = name.indexOf(":");
  return colon === -1 ? name : name.slice(0, colon);
}

/**
 * Why a `channels` claim entry is not a grant, or null when it is one. A grant
 * is an exact channel name, or a namespace wildcard ending in `:*` (`odds:*`).
 * A wildcard never covers the personal namespace: `user:*` is refused, and
 * `vip*` is too, since it would admit `vipadmin`.
 */
export function grantProblem(pattern: string): string | null {
  if (!pattern.endsWith("*")) return isValidChannelName(pattern) ? null : "is not a channel name";
  if (!pattern.endsWith(WILDCARD_SUFFIX)) return "must end at a namespace boundary, like odds:*";
  const prefix = pattern.slice(0, -1);
  if (prefix.length < 2 || !isValidChannelName(prefix)) return "is not a channel namespace";
  if (isPersonalChannel(prefix)) return "would cover other users' personal channels";
  return null;
}

/**
 * Whether a claim-granted pattern admits `channel`: an exact name, or a
 * namespace wildcard (`forecasts:*` admits `forecasts:BTC`). A wildcard never
 * admits a personal channel, whatever its prefix; anything else ending in `*`
 * admits nothing.
 */
export function grantMatches(pattern: string, channel: string): boolean {
  if (pattern.endsWith(WILDCARD_SUFFIX)) {
    const prefix = pattern.slice(0, -1);
    return channel.length > prefix.length && channel.startsWith(prefix) && !isPersonalChannel(channel);
  }
  return pattern === channel;
}

export interface ChannelGrantee {
  readonly sub: string;
  readonly channels: readonly string[];
}

/**
 * Whether `who` may subscribe to `channel`: public channels for everyone, the
 * user's own personal channel, and claim grants. Another user's personal channel
 * is only reachable through an exact grant naming it.
 */
export function maySubscribe(who: ChannelGrantee, channel: string): boolean {
  if (PUBLIC_CHANNELS.has(channel)) return true;
  if (PUBLIC_CHANNEL_PREFIXES.some((prefix) => channel.startsWith(prefix))) return true;
  if (channel === userChannel(who.sub)) return true;
  return who.channels.some((pattern) => grantMatches(pattern, channel));
}
