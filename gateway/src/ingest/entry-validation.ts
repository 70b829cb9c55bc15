/**
 * Whether a stream entry is a valid publish. Pure: the same rules as
 * POST /v1/publish (validatePublishBody), applied to the entry's `channel`,
 * `event` and `data` (JSON text) fields.
 */

import type { PublishRequest } from "../../../shared/src/protocol.js";
import { validatePublishBody } from "../fanout/publisher.js";
import type { IngestRejectReason } from "./ingest-metrics.js";
import { entryField, type StreamEntry } from "./stream-replies.js";

export interface EntryLimits {
  /** Largest `data` field, in bytes; a larger entry is rejected (too_large). */
  readonly maxDataBytes: number;
  /** Deepest nesting of `data` (MAX_JSON_DEPTH); a deeper entry is rejected (invalid). */
  readonly maxDataDepth: number;
}

export interface Rejection {
  readonly entry: StreamEntry;
  readonly reason: IngestRejectReason;
  /** Why, for the copy in `<prefix>:ingest:rejected` and the log. */
  readonly message: string;
}

export function validateEntry(entry: StreamEntry, limits: EntryLimits): PublishRequest | Rejection {
  if (entry.fields === null) return { entry, reason: "trimmed", message: "entry was trimmed from the stream before it was published" };
  const channel = entryField(entry.fields, "channel");
  const event = entryField(entry.fields, "event");
  const text = entryField(entry.fields, "data");
  let data: unknown;
  if (text !== undefined && entry.notUtf8?.includes("data") === true) return { entry, reason: "bad_json", message: "data is not valid UTF-8" };
  if (text !== undefined) {
    if (Buffer.byteLength(text) > limits.maxDataBytes) return { entry, reason: "too_large", message: `data is over ${limits.maxDataBytes} bytes` };
    try {
      data = JSON.parse(text);
    } catch (err) {
      return { entry, reason: "bad_json", message: `data is not valid JSON: ${(err as Error).message}` };
    }
  }
  const validated = validatePublishBody({ channel, event, data }, { maxBatch: 1, maxDataDepth: limits.maxDataDepth });
  if (!validated.ok) return { entry, reason: validated.refusal === "forbidden" ? "forbidden" : "invalid", message: validated.message.replace(/^body\./, "") };
  const request = validated.requests[0];
  if (request === undefined) return { entry, reason: "invalid", message: "no message" };
  // The stream id as idempotency key: a takeover that publishes the entry again is a no-op.
  return { ...request, idempotencyKey: `ingest:${entry.id}` };
}

export function isRejection(outcome: PublishRequest | Rejection): outcome is Rejection {
  return "reason" in outcome;
}
