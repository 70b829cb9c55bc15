/**
 * Hands each delivery from the bus to this node's sockets, once per protocol:
 * raw WebSocket clients get the frame bytes as they came (one native uWS topic
 * publish, or for a personal channel a send to each of its few sockets; see
 * WsTransport.sink), Socket.IO clients get one room broadcast. No sink ever
 * encodes per recipient.
 */

import type { Logger } from "pino";
import type { GapFrame } from "../../../shared/src/protocol.js";
import type { Delivery } from "../broker/broker.js";
import type { GapNotice } from "../history/channel-sequencer.js";
import type { Clock } from "../time/clock.js";

// For clock/ until it imports ../time/clock.js itself; then drop this line.
export type { Clock } from "../time/clock.js";

/** What local fan-out records. */
export interface FanoutMetrics {
  /** One delivery handed to this node's sockets: every sink's recipients, the frame's size, publish→hand-off latency and the hand-off's own duration. */
  broadcastDelivered(channel: string, recipients: number, bytes: number, latencySeconds: number, durationSeconds: number): void;
  /** One sink failed on one delivery; the other sinks got it. */
  deliveryFailed(sink: FanoutSink["name"]): void;
}

/** One protocol's local subscribers. */
export interface FanoutSink {
  /** A metric label: the protocol this sink serves. */
  readonly name: "ws" | "socketio";
  /** Hands the delivery to this sink's local subscribers; returns how many there were. May throw. */
  deliver(delivery: Delivery): number;
  /** Tells the channel's local subscribers that continuity broke (a `gap` frame or event). May throw. */
  signalGap(gap: GapFrame): void;
}

/** The part of a uWS App that raw fan-out needs. */
export interface TopicPublisher {
  /** `compress` asks for permessage-deflate; sockets that did not negotiate it get the frame as is. */
  publish(topic: string, message: Uint8Array, isBinary: boolean, compress: boolean): boolean;
  numSubscribers(topic: string): number;
}

export class LocalFanout {
  private readonly sinks: FanoutSink[] = [];

  constructor(
    private readonly metrics: FanoutMetrics,
    private readonly log: Logger,
    private readonly clock: Clock = Date,
  ) {}

  addSink(sink: FanoutSink): void {
    this.sinks.push(sink);
  }

  /**
   * Never throws. A sink that fails on one delivery (a payload its encoder
   * cannot handle) costs only that sink that delivery: the other sinks still
   * get it, later deliveries are untouched, and the failure is counted.
   */
  deliver(delivery: Delivery): void {
    const started = process.hrtime.bigint();
    let recipients = 0;
    for (const sink of this.sinks) {
      try {
        recipients += sink.deliver(delivery);
      } catch (err) {
        this.metrics.deliveryFailed(sink.name);
        this.log.error({ err, sink: sink.name, channel: delivery.channel, offset: delivery.offset }, "local delivery failed");
      }
    }
    const duration = Number(process.hrtime.bigint() - started) / 1e9;
    const latency = (this.clock.now() - delivery.ts) / 1000;
    this.metrics.broadcastDelivered(delivery.channel, recipients, delivery.frame.length, latency, duration);
  }
  /** Never throws, like deliver(). */
  signalGap(notice: GapNotice): void {
    const frame: GapFrame = { type: "gap", ...notice };
    for (const sink of this.sinks) {
      try {
        sink.signalGap(frame);
      } catch (err) {
        this.metrics.deliveryFailed(sink.name);
        this.log.error({ err, sink: sink.name, channel: notice.channel }, "gap notice failed");
      }
    }
  }

}
