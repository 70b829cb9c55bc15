/**
 * The node's one time source, injected wherever behaviour depends on the
 * wall clock so tests can set it. `Date` is the production implementation.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch, like Date.now(). */
  now(): number;
}
