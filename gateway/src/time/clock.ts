/**
 * The node's time source: milliseconds since the epoch. `Date` satisfies it;
 * tests hand in a clock they move by hand.
 */
export interface Clock {
  now(): number;
}
