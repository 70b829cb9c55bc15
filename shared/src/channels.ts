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

/** Namespace of a channel prefix for personal channels: `user:<sub>`. */
export const USER_CHANNEL_PREFIX = "user:";

export function userChannel(sub: string): string {
  return `${USER_CHANNEL_PREFIX}${sub}`;
}

export function isValidChannelName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_CHANNEL_LENGTH && CHANNEL_PATTERN.test(name);
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
 * Whether a claim-granted pattern admits `channel`. A pattern is an exact name,
 * or a prefix ending in `*` (`forecasts:*` admits `forecasts:BTC`).
 */
export function grantMatches(pattern: string, channel: string): boolean {
  if (pattern.endsWith("*")) return channel.startsWith(pattern.slice(0, -1));
  return pattern === channel;
}

export interface ChannelGrantee {
  readonly sub: string;
  readonly channels: readonly string[];
}

/**
 * Whether `who` may subscribe to `channel`: public channels for everyone, the
 * user's own personal channel, and claim grants. Another user's personal channel
 * is only reachable through an explicit grant.
 */
export function maySubscribe(who: ChannelGrantee, channel: string): boolean {
  if (PUBLIC_CHANNELS.has(channel)) return true;
  if (PUBLIC_CHANNEL_PREFIXES.some((prefix) => channel.startsWith(prefix))) return true;
  if (channel === userChannel(who.sub)) return true;
  return who.channels.some((pattern) => grantMatches(pattern, channel));
}
