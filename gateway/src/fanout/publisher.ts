/**
 * Turns publish requests into broker publications: validates them, encodes
 * each message frame exactly once, and hands the batch to the broker.
 * Shared by the HTTP publish API and every in-process producer.
 */

import { isPlainObject } from "../../../shared/src/json.js";
import { exceedsJsonDepth, hasNonFiniteNumber } from "../../../shared/src/json-limits.js";
import { isValidChannelName, ROUND_AUTHORITY_CHANNELS } from "../../../shared/src/channels.js";
import { isValidEventName, isValidIdempotencyKey, MAX_EVENT_NAME_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH, type JsonValue, type PublishRequest, type PublishResult } from "../../../shared/src/protocol.js";
import type { Broker } from "../broker/broker.js";
import type { Clock } from "../time/clock.js";
import { encodeFrameHead } from "./message-frame.js";

/**
 * Why a publish body is refused: `bad_request` for a malformed one,
 * `forbidden` for one naming a channel only the round authority publishes to.
 */
export type PublishRefusal = "bad_request" | "forbidden";

export type ValidatedBatch =
  | { readonly ok: true; readonly requests: PublishRequest[]; readonly batch: boolean }
  | { readonly ok: false; readonly refusal: PublishRefusal; readonly message: string };

interface Refused {
  readonly refusal: PublishRefusal;
  readonly message: string;
}

/** Structural bounds every publish is held to, whichever way it arrives. */
export interface PublishLimits {
  /** Most messages in one batch. */
  readonly maxBatch: number;
  /** Deepest nesting of `data` (MAX_JSON_DEPTH); checked before anything is encoded. */
  readonly maxDataDepth: number;
}

/**
 * A publish that cannot be encoded. The request's fault, never the bus's: the
 * publish API answers 400, not 503, and nothing was published.
 */
export class PublishEncodeError extends Error {
  override readonly name = "PublishEncodeError";
}

function badRequest(message: string): Refused {
  return { refusal: "bad_request", message };
}

function validateOne(value: unknown, where: string, limits: PublishLimits): PublishRequest | Refused {
  if (!isPlainObject(value)) return badRequest(`${where} must be an object with channel, event and data`);
  const { channel, event, data, idempotencyKey } = value;
  if (typeof channel !== "string" || !isValidChannelName(channel)) {
    return badRequest(`${where}.channel must be 1-128 characters of A-Z a-z 0-9 _ - . : @ | = + /`);
  }
  // The round clock publishes these through its own fenced script, never through here.
  if (ROUND_AUTHORITY_CHANNELS.has(channel)) return { refusal: "forbidden", message: `${where}.channel ${channel} is published only by the round clock` };
  if (typeof event !== "string" || !isValidEventName(event)) {
    return badRequest(`${where}.event must be 1-${MAX_EVENT_NAME_LENGTH} characters of A-Z a-z 0-9 _ - . :`);
  }
  if (data === undefined) return badRequest(`${where}.data is required (use null for none)`);
  if (exceedsJsonDepth(data, limits.maxDataDepth)) return badRequest(`${where}.data nests deeper than ${limits.maxDataDepth} levels`);
  if (hasNonFiniteNumber(data)) return badRequest(`${where}.data holds a number outside the range of a double (send it as a string)`);
  if (idempotencyKey !== undefined && (typeof idempotencyKey !== "string" || !isValidIdempotencyKey(idempotencyKey))) {
    return badRequest(`${where}.idempotencyKey must be 1-${MAX_IDEMPOTENCY_KEY_LENGTH} characters of A-Z a-z 0-9 _ - . : @ | = + /`);
  }
  return { channel, event, data: data as JsonValue, ...(idempotencyKey === undefined ? {} : { idempotencyKey }) };
}

function isRefused(outcome: PublishRequest | Refused): outcome is Refused {
  return "refusal" in outcome;
}

/** Accepts `{channel, event, data}` or `{messages: [{channel, event, data}, …]}`; all or nothing. */
export function validatePublishBody(body: unknown, limits: PublishLimits): ValidatedBatch {
  if (isPlainObject(body) && "messages" in body) {
    const messages = body["messages"];
    if (!Array.isArray(messages) || messages.length === 0) return { ok: false, ...badRequest("messages must be a non-empty array") };
    if (messages.length > limits.maxBatch) return { ok: false, ...badRequest(`at most ${limits.maxBatch} messages per batch`) };
    const requests: PublishRequest[] = [];
    for (let i = 0; i < messages.length; i++) {
      const one = validateOne(messages[i], `messages[${i}]`, limits);
      if (isRefused(one)) return { ok: false, ...one };
      requests.push(one);
    }
    return { ok: true, requests, batch: true };
  }
  const one = validateOne(body, "body", limits);
  return isRefused(one) ? { ok: false, ...one } : { ok: true, requests: [one], batch: false };
}

/** What publishing records. */
export interface PublisherMetrics {
  /** One message frame encoded for the bus: once per publish, never per recipient. */
  frameEncoded(protocol: "ws"): void;
  /** One message accepted by the bus, on `channel`. */
  published(channel: string): void;
}

export class Publisher {
  constructor(
    private readonly broker: Broker,
    private readonly metrics: PublisherMetrics,
    private readonly clock: Clock = Date,
  ) {}

  /**
   * Publishes validated requests atomically. Rejects, publishing nothing, with
   * PublishEncodeError when a request cannot be encoded, else with the
   * broker's error when the bus is unreachable.
   */
  async publish(requests: readonly PublishRequest[]): Promise<PublishResult[]> {
    const ts = this.clock.now();
    const publications = requests.map((request) => {
      this.metrics.frameEncoded("ws");
      const publication = { channel: request.channel, ts, frameHead: encodeFrameHead(request.channel, request.event, encodeData(request.data)) };
      return request.idempotencyKey === undefined ? publication : { ...publication, idempotencyKey: request.idempotencyKey };
    });
    const outcomes = await this.broker.publish(publications);
    return outcomes.map((outcome, i) => {
      if (outcome.duplicate) return { offset: outcome.offset, epoch: outcome.epoch, duplicate: true };
      this.metrics.published((requests[i] as PublishRequest).channel);
      return { offset: outcome.offset, epoch: outcome.epoch };
    });
  }
}

/** JSON text of `data`; validated input never fails here, this is the last line of defence. */
function encodeData(data: JsonValue): string {
  try {
    return JSON.stringify(data);
  } catch (err) {
    throw new PublishEncodeError(`data cannot be encoded: ${(err as Error).message}`, { cause: err });
  }
}
