/**
 * Client commands (`{"type":"command","id":N,"name":…,"data":…}`) and their
 * results. A command's `ok` reply means its effect is committed.
 */

export const CommandNames = {
  placeBet: "place_bet",
} as const;

export type CommandName = (typeof CommandNames)[keyof typeof CommandNames];

export interface PlaceBetData {
  /** Must be the current round, still waiting (bets close when the race starts). */
  readonly roundId: number;
  /** Runner number, 1..runners of that round. */
  readonly selection: number;
  /** Integer, minor currency units, between BET_MIN_AMOUNT and BET_MAX_AMOUNT. */
  readonly amount: number;
  /** 8-64 characters of A-Z a-z 0-9 _ -, unique per user; a retry with the same key is answered with the original bet. */
  readonly idempotencyKey: string;
}

export interface PlacedBetView {
  readonly betId: string;
  readonly roundId: number;
  readonly selection: number;
  readonly amount: number;
  readonly placedAt: number;
  /** True when this answers a repeated idempotency key: the bet was placed earlier. */
  readonly duplicate: boolean;
}

export interface PlaceBetResult {
  readonly bet: PlacedBetView;
}
