/**
 * Sharded pub/sub on a Redis Cluster (Redis 7): one subscriber connection per
 * master, each channel SSUBSCRIBEd on the master that owns its slot. A
 * message published with SPUBLISH then travels only inside its shard (master
 * and replicas), not across the whole cluster bus as PUBLISH does, so adding
 * shards adds pub/sub capacity.
 *
 * The slot map comes from a Cluster connection used for nothing else. It is
 * read again when a shard connection drops, when a shard answers MOVED, and
 * every REFRESH_MS while a shard is missing. A node that is no longer a
 * master loses its connection; a new master gets one. `up` fires when every
 * slot has a master with a ready connection, `down` as soon as one is
 * missing: a master that died leaves the subscriber down until the Cluster
 * promoted a replica (cluster-node-timeout plus an election).
 */

import type { Cluster, Redis } from "ioredis";
import type { Logger } from "pino";
import type { BusSubscriber, BusSubscriberEvents } from "./bus-subscriber.js";
import { CLUSTER_SLOTS, keySlot } from "./key-slot.js";
import type { RedisAddress } from "./topology.js";

/** How often the slot map is read while some slot has no ready shard connection. */
const REFRESH_MS = 250;

/** ioredis names a node `host:port` (the host as the Cluster announces it). */
function addressOf(nodeKey: string): RedisAddress {
  const colon = nodeKey.lastIndexOf(":");
  return { host: nodeKey.slice(0, colon), port: Number(nodeKey.slice(colon + 1)) };
}

export class ShardedBusSubscriber implements BusSubscriber {
  /** Slot → `host:port` of its master; empty until the first refresh. */
  private slotMasters: ReadonlyArray<string | undefined> = [];
  private readonly shards = new Map<string, Redis>();
  private connected = false;
  private closed = false;
  private readonly poll: NodeJS.Timeout;

  /**
   * `topology` is a Cluster connection of its own (it is closed with this);
   * `connectTo` opens a subscriber connection to one master, without
   * auto-resubscribe and without resending unanswered commands.
   */
  constructor(
    private readonly topology: Cluster,
    private readonly connectTo: (address: RedisAddress) => Redis,
    private readonly events: BusSubscriberEvents,
    private readonly log: Logger,
  ) {
    topology.on("refresh", () => this.reconcile());
    this.poll = setInterval(() => {
      if (!this.connected) this.refresh();
    }, REFRESH_MS);
    this.poll.unref();
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    await Promise.all(this.bySlot(channels).map(({ shard, channels: group }) => shard.ssubscribe(...group)));
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    const groups = this.bySlot(channels, false);
    await Promise.all(groups.map(({ shard, channels: group }) => shard.sunsubscribe(...group)));
  }

  isConnected(): boolean {
    return this.connected;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.poll);
    const shards = [...this.shards.values()];
    this.shards.clear();
    await Promise.allSettled([...shards.map((shard) => shard.quit()), this.topology.quit()]);
    for (const shard of shards) shard.disconnect();
    this.topology.disconnect();
  }

  /**
   * Channels grouped by slot (SSUBSCRIBE takes one slot's channels at a time),
   * each group with the connection to its master. `strict`: throw when a
   * master has no ready connection; otherwise leave those channels out (their
   * subscriptions went with the connection).
   */
  private bySlot(channels: readonly string[], strict = true): Array<{ shard: Redis; channels: string[] }> {
    const groups = new Map<number, { shard: Redis; channels: string[] }>();
    for (const channel of channels) {
      const slot = keySlot(channel);
      let group = groups.get(slot);
      if (group === undefined) {
        const master = this.slotMasters[slot];
        const shard = master === undefined ? undefined : this.shards.get(master);
        if (shard === undefined || shard.status !== "ready") {
          if (strict) throw new Error(`no ready connection to the master of slot ${slot} (${master ?? "unknown"})`);
          continue;
        }
        group = { shard, channels: [] };
        groups.set(slot, group);
      }
      group.channels.push(channel);
    }
    return [...groups.values()];
  }

  private refresh(): void {
    if (this.closed) return;
    this.topology.refreshSlotsCache((err) => {
      if (err) this.log.debug({ err }, "redis cluster slot map not readable yet");
    });
  }

  /** Brings the shard connections in line with the Cluster's current masters. */
  private reconcile(): void {
    if (this.closed) return;
    const slotMasters = Array.from({ length: CLUSTER_SLOTS }, (_, slot) => this.topology.slots[slot]?.[0]);
    const masters = new Set(slotMasters.filter((key): key is string => key !== undefined));
    for (const [key, shard] of this.shards) {
      if (masters.has(key)) continue;
      // Demoted or gone: its subscriptions are void; the next `up` re-issues them on the new master.
      this.shards.delete(key);
      shard.disconnect();
      this.log.info({ node: key }, "redis cluster node no longer a master; its sharded subscriptions move");
    }
    for (const key of masters) {
      if (!this.shards.has(key)) this.shards.set(key, this.openShard(key));
    }
    this.slotMasters = slotMasters;
    this.update();
  }

  private openShard(key: string): Redis {
    const shard = this.connectTo(addressOf(key));
    shard.on("smessageBuffer", (channel: Buffer, message: Buffer) => this.events.message(channel, message));
    shard.on("ready", () => this.update());
    shard.on("close", () => {
      this.update();
      this.refresh();
    });
    // The slot moved (a failover the map has not caught up with): read it again.
    shard.on("moved", () => this.refresh());
    return shard;
  }

  /** Fires `up` or `down` when whether every slot has a ready master connection changes. */
  private update(): void {
    if (this.closed) return;
    const connected =
      this.slotMasters.length === CLUSTER_SLOTS &&
      this.slotMasters.every((key) => key !== undefined && this.shards.get(key)?.status === "ready");
    if (connected === this.connected) return;
    this.connected = connected;
    if (connected) this.events.up();
    else this.events.down();
  }
}
