/**
 * Hands each delivery from the bus to this node's sockets, once per protocol:
 * raw WebSocket clients get the frame bytes as they came (one native uWS topic
 * publish), Socket.IO clients get one room broadcast. No sink ever encodes per
 * recipient.
 */

import { channelNamespace } from "../../../shared/src/channels.js";
import type { Delivery } from "../broker/broker.js";
import type { GatewayMetrics } from "../metrics/gateway-metrics.js";

/** One protocol's local subscribers. */
export interface FanoutSink {
  /** Hands the delivery to this sink's local subscribers; returns how many there were. */
  deliver(delivery: Delivery): number;
}

/** The part of a uWS App that raw fan-out needs. */
export interface TopicPublisher {
  publish(topic: string, message: Uint8Array, isBinary: boolean): boolean;
  numSubscribers(topic: string): number;
}

/** Raw `/ws` sockets: the channel name is the uWS topic. */
export class UwsTopicSink implements FanoutSink {
  constructor(private readonly topics: TopicPublisher) {}

  deliver(delivery: Delivery): number {
    const recipients = this.topics.numSubscribers(delivery.channel);
    if (recipients > 0) this.topics.publish(delivery.channel, delivery.frame, false);
    return recipients;
  }
}

export interface Clock {
  now(): number;
}

export class LocalFanout {
  private readonly sinks: FanoutSink[] = [];

  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly clock: Clock = Date,
  ) {}

  addSink(sink: FanoutSink): void {
    this.sinks.push(sink);
  }

  deliver(delivery: Delivery): void {
    const started = process.hrtime.bigint();
    let recipients = 0;
    for (const sink of this.sinks) recipients += sink.deliver(delivery);
    const duration = Number(process.hrtime.bigint() - started) / 1e9;
    const latency = (this.clock.now() - delivery.ts) / 1000;
    this.metrics.broadcastDelivered(channelNamespace(delivery.channel), recipients, delivery.frame.length, latency, duration);
  }
}
