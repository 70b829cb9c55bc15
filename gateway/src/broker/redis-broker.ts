/**
 * Broker over Redis: a command connection for publishing and a subscriber.
 * One Redis PUBLISH per publication, whatever the number of sockets; offsets
 * come from the same Lua script, so numbering and delivery order cannot
 * disagree. On a Redis Cluster the script runs once per slot of a batch and
 * publishes with SPUBLISH, and the subscriber SSUBSCRIBEs on each shard
 * (redis/connections.ts decides which).
 */

import type { ChainableCommander } from "ioredis";
import type { Logger } from "pino";
import { readFrameChannel, readFrameEnvelope } from "../fanout/message-frame.js";
import type { BusSubscriber } from "../redis/bus-subscriber.js";
import { serverOfSlot, type RedisClient, type RedisConnections } from "../redis/connections.js";
import { PublishUncertainError, type Broker, type BrokerHandler, type Publication, type PublishOutcome } from "./broker.js";
import { parsePublishReply, publicationsBySlot, publishAllLua, publishScriptArgs, type PublishPolicy, type SlotGroup } from "./publish-script.js";
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
  /** Replicas that must hold a publish (Redis WAIT) before it resolves; 0: once the master ran it. */
  readonly waitReplicas: number;
  readonly handler: BrokerHandler;
  readonly metrics: BrokerMetrics;
  readonly log: Logger;
}

const RESUBSCRIBE_CHUNK = 1000;
/** How long a publish waits for REDIS_WAIT_REPLICAS replicas before it is refused. */
export const REPLICA_WAIT_MS = 1000;

type PublishReply = Array<string | number>;

type ScriptedRedis = RedisClient & {
  gatewayPublish(numKeys: number, ...args: Array<string | number>): Promise<PublishReply>;
};

type ScriptedPipeline = ChainableCommander & {
  gatewayPublish(numKeys: number, ...args: Array<string | number>): ChainableCommander;
};

export class RedisBroker implements Broker {
  private readonly publisher: ScriptedRedis;
  private readonly subscriber: BusSubscriber;
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
    this.publisher.defineCommand("gatewayPublish", { lua: `${publishAllLua(this.keyspace)}\nreturn publish_all(1, 1)` });
    // Resubscribing is ours, not ioredis's: we re-issue every subscription on
    // each `up`, and only then call the node ready again.
    this.subscriber = options.redis.openSubscriber("subscriber", {
      message: (channel, message) => this.onMessage(channel, message),
      up: () => void this.resubscribeAll(),
      down: () => {
        this.subscriberReady = false;
        options.metrics.redisConnectionChanged("subscriber", false);
        this.emitReadiness();
      },
    });
    this.publisher.on("close", () => {
      options.metrics.redisConnectionChanged("publisher", false);
      this.emitReadiness();
    });
    this.publisher.on("ready", () => {
      options.metrics.redisConnectionChanged("publisher", true);
      this.emitReadiness();
    });
  }

  /**
   * Starts connecting and returns at once: a node may start before Redis and
   * reports not-ready until both connections are up (ioredis keeps retrying).
   */
  static start(options: RedisBrokerOptions): RedisBroker {
    return new RedisBroker(options);
  }

  isReady(): boolean {
    return !this.closed && this.publisher.status === "ready" && this.subscriberReady && this.subscriber.isConnected();
  }

  async publish(publications: readonly Publication[]): Promise<PublishOutcome[]> {
    if (publications.length === 0) return [];
    const groups = publicationsBySlot(this.keyspace, publications);
    try {
      if (groups.length === 1 && this.options.waitReplicas === 0) {
        const { keys, args } = publishScriptArgs(this.options.policy, publications);
        return parsePublishReply(await this.publisher.gatewayPublish(keys.length, ...keys, ...args), publications.length);
      }
      return await this.publishPipelined(publications, groups);
    } catch (err) {
      this.options.metrics.redisCommandFailed("publish");
      throw err;
    }
  }

  /**
   * One script per slot, sent in one pipeline per server (each Cluster master
   * gets the scripts of its slots in one write), each pipeline ending with
   * WAIT when replicas must confirm. Each script is atomic; a batch over
   * several slots is not: when part of it fails, PublishUncertainError.
   */
  private async publishPipelined(publications: readonly Publication[], groups: readonly SlotGroup[]): Promise<PublishOutcome[]> {
    const byServer = new Map<string, SlotGroup[]>();
    for (const group of groups) {
      const server = serverOfSlot(this.publisher, group.slot);
      const onServer = byServer.get(server);
      if (onServer === undefined) byServer.set(server, [group]);
      else onServer.push(group);
    }
    const outcomes = new Array<PublishOutcome>(publications.length);
    const failures: Error[] = [];
    await Promise.all(
      [...byServer.values()].map(async (serverGroups) => {
        try {
          const results = await this.runOnServer(serverGroups.map((group) => group.positions.map((i) => publications[i] as Publication)));
          serverGroups.forEach((group, g) => {
            const result = results[g] as PublishOutcome[] | Error;
            if (result instanceof Error) failures.push(result);
            else group.positions.forEach((position, j) => (outcomes[position] = result[j] as PublishOutcome));
          });
        } catch (err) {
          failures.push(err instanceof Error ? err : new Error(String(err)));
        }
      }),
    );
    const [first] = failures;
    if (first === undefined) return outcomes;
    // One slot that failed as a whole published nothing: that is a plain failure.
    if (groups.length === 1 && !(first instanceof PublishUncertainError)) throw first;
    throw new PublishUncertainError(`${failures.length} of the batch's ${groups.length} Redis Cluster slots failed: ${first.message}`, { cause: first });
  }

  /**
   * The scripts of `batches` (each one slot's publications) in one pipeline to
   * their server, then WAIT when REDIS_WAIT_REPLICAS asks for it: resolves
   * only once enough replicas hold them, so a failover cannot lose them.
   * Per batch its outcomes or its error; rejects with PublishUncertainError
   * when replicas did not confirm (subscribers may have the messages: the
   * caller retries with the same idempotency keys, which publishes nothing
   * twice), or with the pipeline's error when nothing was sent.
   */
  private async runOnServer(batches: ReadonlyArray<readonly Publication[]>): Promise<Array<PublishOutcome[] | Error>> {
    const { waitReplicas } = this.options;
    const pipeline = this.publisher.pipeline() as ScriptedPipeline;
    for (const batch of batches) {
      const { keys, args } = publishScriptArgs(this.options.policy, batch);
      pipeline.gatewayPublish(keys.length, ...keys, ...args);
    }
    if (waitReplicas > 0) pipeline.wait(waitReplicas, REPLICA_WAIT_MS);
    const results = await pipeline.exec();
    if (results === null || results.length < batches.length) throw new Error("redis pipeline aborted");
    if (waitReplicas > 0) {
      const [err, replicas] = results[batches.length] ?? [new Error("no WAIT reply"), 0];
      if (err !== null) throw new PublishUncertainError(`published, but WAIT failed: ${err.message}`, { cause: err });
      if (Number(replicas) < waitReplicas) throw new PublishUncertainError(`published, but only ${Number(replicas)} of ${waitReplicas} replicas confirmed it within ${REPLICA_WAIT_MS} ms`);
    }
    return batches.map((batch, i) => {
      const [err, reply] = results[i] as [Error | null, unknown];
      return err !== null ? err : parsePublishReply(reply as PublishReply, batch.length);
    });
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
      pending = this.subscriber.subscribe([bus]);
      this.subscribing.set(bus, pending);
    }
    try {
      await pending;
    } catch (err) {
      this.forget(channel, bus);
      if (first) this.options.metrics.redisCommandFailed("subscribe");
      throw err;
    } finally {
      // Only our own entry: the bus may have been dropped and subscribed afresh meanwhile.
      if (first && this.subscribing.get(bus) === pending) this.subscribing.delete(bus);
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    const bus = this.keyspace.busChannel(channel);
    // Other channels of a personal shard keep the bus.
    if (!this.forget(channel, bus) || !this.subscriberReady) return;
    try {
      await this.subscriber.unsubscribe([bus]);
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
    await Promise.allSettled([this.publisher.quit(), this.subscriber.close()]);
    this.publisher.disconnect();
  }

  private async resubscribeAll(): Promise<void> {
    const channels = [...this.buses.keys()];
    try {
      for (let i = 0; i < channels.length; i += RESUBSCRIBE_CHUNK) {
        await this.subscriber.subscribe(channels.slice(i, i + RESUBSCRIBE_CHUNK));
      }
    } catch (err) {
      // A connection dropped mid-way; the next `up` starts over.
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
