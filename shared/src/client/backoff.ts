/**
 * Reconnect and refresh timing, as pure functions so they can be tested
 * exhaustively. "Full jitter" (AWS architecture blog, 2015): the delay is
 * uniform over [0, ceiling), which spreads a fleet that lost the same node over
 * the whole window instead of bunching it at the ceiling, as "equal jitter" or
 * a fixed delay would.
 */

export interface BackoffPolicy {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

/** The ceiling for retry `attempt` (1-based): initial × 2^(attempt-1), capped. */
export function backoffCeiling(attempt: number, policy: BackoffPolicy): number {
  // Past 2^30 the product overflows nothing useful; the cap applies long before.
  const exponent = Math.min(Math.max(attempt, 1) - 1, 30);
  return Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** exponent);
}

/** Full jitter: uniform in [0, ceiling). `random` returns [0, 1). */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  return Math.floor(random() * backoffCeiling(attempt, policy));
}

/**
 * After 1012 the node is going away on purpose and the others are healthy:
 * come back at once, spread over `jitterMs` so a drained node's sockets do not
 * land on the survivors in the same millisecond.
 */
export function drainDelay(jitterMs: number, random: () => number): number {
  return Math.floor(random() * jitterMs);
}

/**
 * How long from `serverNow` until the token should be refreshed: `leadMs`
 * before expiry, or 10 % of the remaining lifetime when that is shorter, so a
 * short-lived token is not refreshed the moment it arrives. Both times are on
 * the server's clock, so local clock skew does not matter.
 */
export function refreshDelay(expiresAt: number, serverNow: number, leadMs: number): number {
  const remaining = expiresAt - serverNow;
  if (remaining <= 0) return 0;
  return Math.max(0, remaining - Math.min(leadMs, remaining * 0.1));
}
