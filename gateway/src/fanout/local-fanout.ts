/**
 * Hands each delivery from the bus to this node's sockets: one native uWS
 * topic publish of the already-encoded frame, whatever the number of sockets.
 */

import { channelNamespace } from "../../../shared/src/channels.js";
import type { Delivery } from "../broker/broker.js";
import type { GatewayMetrics } from "../metrics/gateway-metrics.js";

/** The part of a uWS App that fan-out needs. */
export interface TopicPublisher {
  publish(topic: string, message: Uint8Array, isBinary: boolean): boolean;
  numSubscribers(topic: string): number;
}

export interface Clock {
  now(): number;
}

export class LocalFanout {
  constructor(
    private readonly topics: TopicPublisher,
    private readonly metrics: GatewayMetrics,
    private readonly clock: Clock = Date,
  ) {}

  deliver(delivery: Delivery): void {
    const recipients = this.topics.numSubscribers(delivery.channel);
    const started = process.hrtime.bigint();
    if (recipients > 0) this.topics.publish(delivery.channel, delivery.frame, false);
    const duration = Number(process.hrtime.bigint() - started) / 1e9;
    const latency = (this.clock.now() - delivery.ts) / 1000;
    this.metrics.broadcastDelivered(channelNamespace(delivery.channel), recipients, delivery.frame.length, latency, duration);
  }
}
