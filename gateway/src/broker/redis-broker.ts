/**
 * Broker over one Redis: a command connection for publishing and a dedicated
 * subscriber connection. One Redis PUBLISH per publication, whatever the number
 * of sockets; offsets come from the same Lua script, so numbering and delivery
 * order cannot disagree.
 */

import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { readFrameChannel, readFrameEnvelope } from "../fanout/message-frame.js";
import type { RedisConnections } from "../redis/connections.js";
import type { Broker, BrokerHandler, Publication, PublishOutcome } from "./broker.js";
import { parsePublishReply, PUBLISH_ALL_LUA, publishScriptArgs, type PublishPolicy } from "./publish-script.js";
import type { RedisKeyspace } from "./redis-keys.js";

/** Why a pub/sub message was not delivered; a metric label, so a closed set. */
export type DroppedMessageReason = "malformed" | "handler_error";

export interface BrokerMetrics {
  redisConnectionChanged(role: "publisher" | "subscriber", up: boolean): void;
  redisMessageReceived(): void;
  redisMessageDropped(reason: DroppedMessageReason): void;
  redisCommandFailed(command: string): void;
  redisResubscribed(channels: number): void;
}

export interface RedisBrokerOptions {
  readonly redis: RedisConnections;
  /** Key prefix, state TTL, history bounds and idempotency window of every publish. */
  readonly policy: PublishPolicy;
  readonly handler: BrokerHandler;
  readonly metrics: BrokerMetrics;
  readonly log: Logger;
}

const PUBLISH_SCRIPT = `${PUBLISH_ALL_LUA}\nreturn publish_all(1, 1)`;

const RESUBSCRIBE_CHUNK = 1000;

type ScriptedRedis = Redis & {
  gatewayPublish(numKeys: number, ...args: Array<string | number>): Promise<Array<string | number>>;
};

export class RedisBroker implements Broker {
  private readonly publisher: ScriptedRedis;
  private readonly subscriber: Redis;
  /** Channels this node receives. */
  private readonly channels = new Set<string>();
  /** Bus channels subscribed in Redis, each with how many channels it carries here (many for a personal shard). */
  private readonly buses = new Map<string, number>();
  /** SUBSCRIBE commands in flight, so a second channel on the same bus waits for the first. */
  private readonly subscribing = new Map<string, Promise<unknown>>();
  private readonly keyspace: RedisKeyspace;
  private subscriberReady = false;
  private lastReady = false;
  private closed = false;

  private constructor(private readonly options: RedisBrokerOptions) {
    this.keyspace = options.policy.keyspace;
    // No offline queue: a publish while Redis is away must fail fast (503), not
    // pile up in memory and go out late. No resend after a reconnect either: a
    // publish whose reply was lost may have run, and running it again would
    // publish it twice. It fails; the caller retries, with an idempotency key
    // if it must not double.
    this.publisher = options.redis.open("publisher", { offlineQueue: false, maxRetriesPerRequest: 1, resendUnanswered: false }) as ScriptedRedis;
    this.publisher.defineCommand("gatewayPublish", { lua: PUBLISH_SCRIPT });
    // Resubscribing is ours, not ioredis's: we re-issue SUBSCRIBE for every
    // channel on each 'ready', and only then call the node ready again.
    this.subscriber = options.redis.open("subscriber", { offlineQueue: false, maxRetriesPerRequest: 1, autoResubscribe: false });

    for (const [role, connection] of [["publisher", this.publisher], ["subscriber", this.subscriber]] as const) {
      connection.on("close", () => {
        if (role === "subscriber") this.subscriberReady = false;
        options.metrics.redisConnectionChanged(role, false);
        this.emitReadiness();
      });
    }
    this.publisher.on("ready", () => {
      options.metrics.redisConnectionChanged("publisher", true);
      this.emitReadiness();
    });
    this.subscriber.on("ready", () => {
      void this.resubscribeAll();
    });
    this.subscriber.on("messageBuffer", (channel: Buffer, message: Buffer) => this.onMessage(channel, message));
  }

  /**
   * Starts connecting and returns at once: a node may start before Redis and
   * reports not-ready until both connections are up (ioredis keeps retrying).
   */
  static start(options: RedisBrokerOptions): RedisBroker {
    return new RedisBroker(options);
  }

  isReady(): boolean {
    return !this.closed && this.publisher.status === "ready" && this.subscriberReady;
  }

  async publish(publications: readonly Publication[]): Promise<PublishOutcome[]> {
    if (publications.length === 0) return [];
    const { keys, args } = publishScriptArgs(this.options.policy, publications);
    let reply: Array<string | number>;
    try {
      reply = await this.publisher.gatewayPublish(keys.length, ...keys, ...args);
    } catch (err) {
      this.options.metrics.redisCommandFailed("publish");
      throw err;
    }
    return parsePublishReply(reply, publications.length);
  }

  async subscribe(channel: string): Promise<void> {
    if (!this.subscriberReady) throw new Error("redis subscriber not ready");
    const bus = this.keyspace.busChannel(channel);
    const first = !this.buses.has(bus);
    if (!this.channels.has(channel)) {
      this.channels.add(channel);
      this.buses.set(bus, (this.buses.get(bus) ?? 0) + 1);
    }
    let pending = this.subscribing.get(bus);
    if (first) {
      pending = this.subscriber.subscribe(bus);
      this.subscribing.set(bus, pending);
    }
    try {
      await pending;
    } catch (err) {
      this.forget(channel, bus);
      if (first) this.options.metrics.redisCommandFailed("subscribe");
      throw err;
    } finally {
      if (first) this.subscribing.delete(bus);
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    const bus = this.keyspace.busChannel(channel);
    // Other channels of a personal shard keep the bus.
    if (!this.forget(channel, bus) || !this.subscriberReady) return;
    try {
      await this.subscriber.unsubscribe(bus);
    } catch (err) {
      // The connection is going away; a new one starts with no subscriptions.
      this.options.metrics.redisCommandFailed("unsubscribe");
      this.options.log.warn({ err, channel }, "redis unsubscribe failed");
    }
  }

  /** Bus channels subscribed in Redis: bounded by the personal shards plus one per other channel. */
  busSubscriptions(): number {
    return this.buses.size;
  }

  /** Drops `channel` from the books; true when its bus carries nothing else any more. */
  private forget(channel: string, bus: string): boolean {
    if (!this.channels.delete(channel)) return false;
    const carried = (this.buses.get(bus) ?? 1) - 1;
    if (carried > 0) {
      this.buses.set(bus, carried);
      return false;
    }
    this.buses.delete(bus);
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.publisher.quit(), this.subscriber.quit()]);
    this.publisher.disconnect();
    this.subscriber.disconnect();
  }

  private async resubscribeAll(): Promise<void> {
    const channels = [...this.buses.keys()];
    try {
      for (let i = 0; i < channels.length; i += RESUBSCRIBE_CHUNK) {
        await this.subscriber.subscribe(...channels.slice(i, i + RESUBSCRIBE_CHUNK));
      }
    } catch (err) {
      // The connection dropped mid-way; the next 'ready' starts over.
      this.options.metrics.redisCommandFailed("resubscribe");
      this.options.log.error({ err, channels: channels.length }, "redis resubscribe failed");
      return;
    }
    if (channels.length > 0) {
      this.options.metrics.redisResubscribed(channels.length);
      this.options.log.info({ channels: channels.length }, "redis subscriptions restored");
    }
    this.subscriberReady = true;
    this.options.metrics.redisConnectionChanged("subscriber", true);
    this.emitReadiness();
  }

  /**
   * Runs inside ioredis's data handler: nothing may escape from here, or one
   * bad message (every node receives every one) stops every node's
   * subscriber. Anything that is not a gateway frame for its channel is
   * dropped and counted.
   */
  private onMessage(redisChannel: Buffer, frame: Buffer): void {
    this.options.metrics.redisMessageReceived();
    const bus = redisChannel.toString("latin1");
    if (!this.keyspace.ownsBus(bus)) return;
    // A personal shard carries every user hashed onto it: keep the ones served here.
    const channel = this.keyspace.channelOfBus(bus) ?? readFrameChannel(frame);
    const envelope = channel === null || this.keyspace.busChannel(channel) !== bus ? null : readFrameEnvelope(channel, frame);
    if (channel === null || envelope === null) {
      this.options.metrics.redisMessageDropped("malformed");
      this.options.log.warn({ bus, bytes: frame.length }, "dropped a pub/sub message that is not a gateway frame");
      return;
    }
    if (!this.channels.has(channel)) return;
    try {
      this.options.handler.onDelivery({ channel, frame, ...envelope });
    } catch (err) {
      this.options.metrics.redisMessageDropped("handler_error");
      this.options.log.error({ err, channel, offset: envelope.offset }, "delivery failed");
    }
  }

  private emitReadiness(): void {
    const ready = this.isReady();
    if (ready === this.lastReady) return;
    this.lastReady = ready;
    this.options.handler.onReadyChange(ready);
  }
}
