/**
 * Names of the gateway's Redis keys and channels, in one place so every
 * component that touches a channel's offset state agrees on it.
 */

/** Channel state hash (offset, epoch). The hash tag keeps a channel's keys in one Redis Cluster slot. */
export function channelStateKey(prefix: string, channel: string): string {
  return `${prefix}:ch:{${channel}}`;
}

export function messageChannelPrefix(prefix: string): string {
  return `${prefix}:msg:`;
}

/** A channel's history: a stream whose entry ids are `<offset>-0`, in the channel's slot. */
export function historyKey(prefix: string, channel: string): string {
  return `${prefix}:hist:{${channel}}`;
}

/**
 * Remembers one idempotency key of one channel for the idempotency window.
 * Keys are scoped to their channel, and hash-tagged into its slot.
 */
export function idempotencyKey(prefix: string, channel: string, key: string): string {
  return `${prefix}:once:{${channel}}:${key}`;
}

/** A user's connections across the cluster: a hash of node incarnation → count (see limits/user-connections.ts). */
export function userConnectionsKey(prefix: string, user: string): string {
  return `${prefix}:conns:{${user}}`;
}

/** Node incarnations holding user connections, scored by when their lease runs out. */
export function connectionNodesKey(prefix: string): string {
  return `${prefix}:conns:nodes`;
}
