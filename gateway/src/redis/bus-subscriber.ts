/**
 * The broker's side of Redis pub/sub, whatever Redis is: SUBSCRIBE on one
 * connection to one server (standalone, or the master Sentinel names), or
 * SSUBSCRIBE on one connection per Cluster master, each channel on the master
 * of its slot (sharded-subscriber.ts). Either way it is at most once: a
 * connection that drops loses its subscriptions and whatever was published
 * while it was away. The owner learns of both through `down` and `up`, and
 * repairs from history.
 */

import type { Redis } from "ioredis";

export interface BusSubscriberEvents {
  /** A message on a subscribed channel. Runs inside ioredis's data handler: must not throw. */
  message(channel: Buffer, message: Buffer): void;
  /**
   * Every connection needed is up. Subscriptions may have been lost on the
   * way (all of them, or one shard's): the owner re-issues every one;
   * subscribing again to a held channel is harmless.
   */
  up(): void;
  /** A connection dropped: some subscriptions are gone until the next `up`. */
  down(): void;
}

export interface BusSubscriber {
  /** Resolves once Redis confirmed every channel. Rejects while a connection it needs is down. */
  subscribe(channels: readonly string[]): Promise<void>;
  /** Rejects only when Redis refuses; a dropped connection drops the subscriptions anyway. */
  unsubscribe(channels: readonly string[]): Promise<void>;
  /** Every connection needed is up (whether the owner re-subscribed since is its own business). */
  isConnected(): boolean;
  close(): Promise<void>;
}

/** SUBSCRIBE on one connection, which ioredis keeps reconnecting (to whichever master Sentinel names). */
export class SingleBusSubscriber implements BusSubscriber {
  constructor(
    private readonly connection: Redis,
    events: BusSubscriberEvents,
  ) {
    connection.on("messageBuffer", (channel: Buffer, message: Buffer) => events.message(channel, message));
    connection.on("ready", () => events.up());
    connection.on("close", () => events.down());
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    await this.connection.subscribe(...channels);
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    await this.connection.unsubscribe(...channels);
  }

  isConnected(): boolean {
    return this.connection.status === "ready";
  }

  async close(): Promise<void> {
    // A connection that is down has nothing to quit: disconnect() ends it either way.
    await Promise.allSettled([this.connection.quit()]);
    this.connection.disconnect();
  }
}
