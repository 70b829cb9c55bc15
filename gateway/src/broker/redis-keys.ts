/**
 * Names of the gateway's Redis keys and channels, in one place so every
 * component that touches a channel's offset state agrees on it.
 */

/** Channel state hash (offset, epoch). The hash tag keeps a channel in one slot should Redis Cluster come. */
export function channelStateKey(prefix: string, channel: string): string {
  return `${prefix}:ch:{${channel}}`;
}

export function messageChannelPrefix(prefix: string): string {
  return `${prefix}:msg:`;
}
