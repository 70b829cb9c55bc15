/**
 * Turns publish requests into broker publications: validates them, encodes
 * each message frame exactly once, and hands the batch to the broker.
 * Shared by the HTTP publish API and every in-process producer.
 */

import { isPlainObject } from "../../../shared/src/json.js";
import { channelNamespace, isValidChannelName } from "../../../shared/src/channels.js";
import { isValidEventName, MAX_EVENT_NAME_LENGTH, type JsonValue, type PublishRequest, type PublishResult } from "../../../shared/src/protocol.js";
import type { Broker } from "../broker/broker.js";
import type { GatewayMetrics } from "../metrics/gateway-metrics.js";
import type { Clock } from "./local-fanout.js";
import { encodeFrameHead } from "./message-frame.js";

export type ValidatedBatch = { readonly ok: true; readonly requests: PublishRequest[]; readonly batch: boolean } | { readonly ok: false; readonly message: string };


function validateOne(value: unknown, where: string): PublishRequest | string {
  if (!isPlainObject(value)) return `${where} must be an object with channel, event and data`;
  const { channel, event, data } = value;
  if (typeof channel !== "string" || !isValidChannelName(channel)) {
    return `${where}.channel must be 1-128 characters of A-Z a-z 0-9 _ - . : @ | = + /`;
  }
  if (typeof event !== "string" || !isValidEventName(event)) {
    return `${where}.event must be 1-${MAX_EVENT_NAME_LENGTH} characters of A-Z a-z 0-9 _ - . :`;
  }
  if (data === undefined) return `${where}.data is required (use null for none)`;
  return { channel, event, data: data as JsonValue };
}

/** Accepts `{channel, event, data}` or `{messages: [{channel, event, data}, …]}`; all or nothing. */
export function validatePublishBody(body: unknown, maxBatch: number): ValidatedBatch {
  if (isPlainObject(body) && "messages" in body) {
    const messages = body["messages"];
    if (!Array.isArray(messages) || messages.length === 0) return { ok: false, message: "messages must be a non-empty array" };
    if (messages.length > maxBatch) return { ok: false, message: `at most ${maxBatch} messages per batch` };
    const requests: PublishRequest[] = [];
    for (let i = 0; i < messages.length; i++) {
      const one = validateOne(messages[i], `messages[${i}]`);
      if (typeof one === "string") return { ok: false, message: one };
      requests.push(one);
    }
    return { ok: true, requests, batch: true };
  }
  const one = validateOne(body, "body");
  return typeof one === "string" ? { ok: false, message: one } : { ok: true, requests: [one], batch: false };
}

export class Publisher {
  constructor(
    private readonly broker: Broker,
    private readonly metrics: GatewayMetrics,
    private readonly clock: Clock = Date,
  ) {}

  /** Publishes validated requests atomically; rejects (publishing nothing) when the broker is unreachable. */
  async publish(requests: readonly PublishRequest[]): Promise<PublishResult[]> {
    const ts = this.clock.now();
    const publications = requests.map((request) => {
      this.metrics.frameEncoded();
      return { channel: request.channel, ts, frameHead: encodeFrameHead(request.channel, request.event, JSON.stringify(request.data)) };
    });
    const outcomes = await this.broker.publish(publications);
    for (const request of requests) this.metrics.published(channelNamespace(request.channel));
    return outcomes;
  }
}
