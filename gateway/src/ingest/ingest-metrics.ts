/**
 * What the ingest path reports. Declared here, implemented by the node's
 * metrics module, so the ingest never depends on the metrics implementation.
 */

/**
 * Why an entry was not published; a metric label, so a closed set.
 * `forbidden`: a channel the round authority owns. `publish_failed`: valid,
 * but its publish failed INGEST_MAX_ATTEMPTS times and then once more on its own.
 */
export type IngestRejectReason = "bad_json" | "invalid" | "forbidden" | "too_large" | "trimmed" | "publish_failed";

export const INGEST_REJECT_REASONS: readonly IngestRejectReason[] = ["bad_json", "invalid", "forbidden", "too_large", "trimmed", "publish_failed"];

export interface IngestMetrics {
  /** `count` entries were published (a repeat after a takeover counts again). */
  ingested(count: number): void;
  ingestRejected(reason: IngestRejectReason): void;
  /** One loop iteration failed (Redis or publish); it is retried after a backoff. */
  ingestFailed(): void;
  /** `count` entries pending on another consumer for `claimIdleMs` were taken over. */
  ingestClaimed(count: number): void;
}
