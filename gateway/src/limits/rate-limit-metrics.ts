/**
 * What the limits record. Declared here, implemented by the node's metrics
 * module, like every module's metrics interface.
 */

/** Which limit refused something; a metric label, so a closed set. */
export type RateLimit = "frames" | "subscribes" | "user_connections" | "user_commands" | "address_connects";

export const RATE_LIMITS: readonly RateLimit[] = ["frames", "subscribes", "user_connections", "user_commands", "address_connects"];

export interface RateLimitMetrics {
  /** One frame, request, connection or command refused by `limit`. */
  rateLimited(limit: RateLimit): void;
}
