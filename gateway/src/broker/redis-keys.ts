/**
 * Where each channel lives in Redis: its state hash (offset, epoch), its
 * history stream, its idempotency keys and the pub/sub channel its messages
 * travel on. One place, so every component that touches a channel agrees.
 *
 * Every name of one channel carries the same hash tag, so all of them share a
 * Redis Cluster slot and one script can number, record and publish a message
 * atomically there. On a Cluster (`layout` "cluster") messages travel by
 * sharded pub/sub (SPUBLISH/SSUBSCRIBE), so each one stays inside the shard
 * that owns its channel's slot; on one server by plain PUBLISH/SUBSCRIBE.
 *
 * Personal channels (`user:<sub>`) are many and each is quiet, so they do not
 * get a pub/sub channel each: they are hashed onto PERSONAL_CHANNEL_SHARDS
 * shared bus channels, and the shard is their hash tag. A node then holds at
 * most that many Redis subscriptions for personal channels, whatever the
 * number of users, and picks the users it serves out of each shard's traffic
 * by the channel name in the frame. Other channels keep a bus channel each.
 */

import { RACE_CHANNEL, USER_CHANNEL_PREFIX } from "../../../shared/src/channels.js";

/** Default for PERSONAL_CHANNEL_SHARDS. */
export const DEFAULT_PERSONAL_CHANNEL_SHARDS = 64;

/** FNV-1a, 32 bits: stable across processes and versions, cheap, evenly spread for short names. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** One Redis server (standalone or behind Sentinel), or a Redis Cluster. */
export type KeyLayout = "single" | "cluster";

/** The round clock's own keys (clock/round-ledger.ts). */
export type ClockKey = "lease" | "fence" | "round";

export class RedisKeyspace {
  private readonly busPrefix: string;

  constructor(
    readonly prefix: string,
    /** How many shared bus channels personal channels are spread over. */
    readonly personalShards: number = DEFAULT_PERSONAL_CHANNEL_SHARDS,
    readonly layout: KeyLayout = "single",
  ) {
    this.busPrefix = `${prefix}:msg:`;
  }

  /** Whether bus channels are shard channels (SPUBLISH/SSUBSCRIBE): on a Cluster. */
  get shardedPubSub(): boolean {
    return this.layout === "cluster";
  }

  /**
   * The round clock's lease, fencing counter and round hash. On a Cluster they
   * carry the `race` channel's hash tag, so the fenced script that checks the
   * lease, moves the round and publishes on `race` touches one slot. On one
   * server they keep the names earlier versions used, so nodes of both
   * versions compete for the same lease during a rolling upgrade.
   */
  clockKey(kind: ClockKey): string {
    return this.layout === "cluster" ? `${this.prefix}:clock:{${this.tag(RACE_CHANNEL)}}:${kind}` : `${this.prefix}:clock:${kind}`;
  }

  /** Whether `channel` travels on a shared shard channel rather than its own. */
  isSharded(channel: string): boolean {
    return channel.startsWith(USER_CHANNEL_PREFIX);
  }

  /** The hash tag of every Redis name of `channel`. */
  tag(channel: string): string {
    return this.isSharded(channel) ? `~u${fnv1a(channel) % this.personalShards}` : channel;
  }

  /** Channel state hash (offset, epoch). */
  stateKey(channel: string): string {
    return this.name("ch", channel);
  }

  /** The channel's history: a stream whose entry ids are `<offset>-0`. */
  historyKey(channel: string): string {
    return this.name("hist", channel);
  }

  /** Remembers one idempotency key of one channel for the idempotency window. */
  idempotencyKey(channel: string, key: string): string {
    return `${this.name("once", channel)}:${key}`;
  }

  /**
   * Who is on the channel (presence): a hash of user → `<incarnation>=<count>,…`,
   * each node incarnation's share of the user's connections there.
   */
  presenceKey(channel: string): string {
    return this.name("pres", channel);
  }

  /** The node incarnations holding presence on the channel, scored by when their lease ends (Redis time). */
  presenceNodesKey(channel: string): string {
    return `${this.name("pres", channel)}:nodes`;
  }

  /** The pub/sub channel the channel's messages are published on (shared with other users for personal channels). */
  busChannel(channel: string): string {
    return `${this.busPrefix}{${this.tag(channel)}}`;
  }

  /**
   * The channel a bus channel carries, when it carries exactly one; null for
   * a personal shard (the frame names the channel) or a name not ours.
   */
  channelOfBus(bus: string): string | null {
    if (!bus.startsWith(this.busPrefix) || !bus.endsWith("}")) return null;
    const tag = bus.slice(this.busPrefix.length + 1, -1);
    return tag.startsWith("~u") ? null : tag;
  }

  /** Whether `bus` is one of this keyspace's bus channels. */
  ownsBus(bus: string): boolean {
    return bus.startsWith(`${this.busPrefix}{`) && bus.endsWith("}");
  }

  private name(kind: string, channel: string): string {
    const tag = this.tag(channel);
    // A personal channel's names say which channel they are, after the shared tag.
    return tag === channel ? `${this.prefix}:${kind}:{${tag}}` : `${this.prefix}:${kind}:{${tag}}:${channel}`;
  }
}

/** A user's connections across the cluster: a hash of node incarnation → count (see limits/user-connections.ts). */
export function userConnectionsKey(prefix: string, user: string): string {
  return `${prefix}:conns:{${user}}`;
}

/** Node incarnations holding user connections, scored by when their lease runs out. */
export function connectionNodesKey(prefix: string): string {
  return `${prefix}:conns:nodes`;
}

/**
 * The cluster's control channel: disconnect and revoke commands, published
 * once and received by every node (plain PUBLISH, which Redis Cluster
 * broadcasts to every shard).
 */
export function controlChannel(prefix: string): string {
  return `${prefix}:control`;
}

/** Revocations: user → revoke-before (ms) and user → when the entry lapses (ms); one hash tag, so one script keeps both. */
export function revocationKeys(prefix: string): { readonly before: string; readonly until: string } {
  return { before: `${prefix}:{revoked}:before`, until: `${prefix}:{revoked}:until` };
}

/**
 * The node registry behind GET /v1/info and /v1/channels, under one hash tag:
 * node incarnations scored by when their lease ends, each one's status, and
 * each one's channels (a sorted set for prefix ranges, a hash of counts).
 */
export function nodeRegistryKeys(prefix: string): { readonly leases: string; readonly status: string; channels(incarnation: string): string; counts(incarnation: string): string } {
  const base = `${prefix}:{nodes}`;
  return {
    leases: `${base}:leases`,
    status: `${base}:status`,
    channels: (incarnation) => `${base}:channels:${incarnation}`,
    counts: (incarnation) => `${base}:counts:${incarnation}`,
  };
}
