/**
 * How long a loop waits after consecutive failures: the SDK's full-jitter
 * backoff (shared/src/client/backoff.ts), so nodes that lost the same Redis or
 * Postgres spread their retries over the window instead of hitting it in step.
 */

import { backoffDelay, type BackoffPolicy } from "../../../shared/src/client/backoff.js";

export type { BackoffPolicy };

export class RetryBackoff {
  private failures = 0;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** Counts one more failure; returns the delay before the next attempt, in ms. */
  next(): number {
    this.failures++;
    return backoffDelay(this.failures, this.policy, this.random);
  }

  /** The last attempt succeeded: the next failure starts from the shortest delay. */
  reset(): void {
    this.failures = 0;
  }
}
