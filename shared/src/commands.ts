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
  /** The decimal odds the player saw for `selection` (round_started / timer_update); other odds are refused with `odds_changed`. */
  readonly odds: number;
  /**
   * 8-64 characters of A-Z a-z 0-9 _ -, unique per user; a retry with the same
   * key is answered with the original bet, a different bet under it with `conflict`.
   */
  readonly idempotencyKey: string;
}

export interface PlacedBetView {
  readonly betId: string;
  readonly roundId: number;
  readonly selection: number;
  readonly amount: number;
  readonly odds: number;
  /** When the database accepted it (its clock), ms since the epoch. */
  readonly placedAt: number;
  /** True when this answers a repeated idempotency key: the bet was placed earlier. */
  readonly duplicate: boolean;
}

export interface PlaceBetResult {
  readonly bet: PlacedBetView;
}

/** `won` and `lost` by the round's result; `void` when the round could not be finished. */
export type BetStatus = "won" | "lost" | "void";

/**
 * `bet_settled` on `user:<sub>`: one per bet, once its round is settled or
 * voided. Payout in minor units: floor(amount × odds) when won, 0 when lost,
 * the stake (amount) when void.
 */
export interface BetSettled {
  readonly betId: string;
  readonly roundId: number;
  readonly selection: number;
  readonly amount: number;
  readonly odds: number;
  readonly status: BetStatus;
  readonly payout: number;
  readonly settledAt: number;
}

export const BetEvents = {
  betSettled: "bet_settled",
} as const;
