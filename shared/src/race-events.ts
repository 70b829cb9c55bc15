/**
 * Payloads of the `race` channel's events. Times are ms since the Unix epoch,
 * durations are ms. docs/game-screens.md explains how a screen uses them.
 */

export type Screen = "game_screen" | "movie_screen" | "finish_screen";

export const RaceEvents = {
  roundStarted: "round_started",
  timerUpdate: "timer_update",
  raceStarted: "race_started",
  raceSync: "race_sync",
  roundFinished: "round_finished",
  roundVoided: "round_voided",
} as const;

export type RaceEventName = (typeof RaceEvents)[keyof typeof RaceEvents];

/** Every ROUND_WAIT tick (TIMER_UPDATE_INTERVAL_MS) while bets are open. */
export interface TimerUpdate {
  readonly roundId: number;
  readonly timer: {
    /** ms until the race starts, never negative. */
    readonly timeLeft: number;
    /** ms of the whole waiting phase. */
    readonly totalDuration: number;
    /** timeLeft / totalDuration × 100, one decimal: the countdown bar's remaining share. */
    readonly percentage: number;
  };
  readonly currentScreen: "game_screen";
  /** Decimal odds of runners 1..n (index 0 is runner 1), as in round_started: a screen that joined late can take bets. */
  readonly odds: readonly number[];
  readonly serverTime: number;
}

/** Every RACE_SYNC_INTERVAL_MS while the race and then the results show. */
export interface RaceSync {
  readonly roundId: number;
  readonly raceStartTime: number;
  /** ms since the race started (keeps growing through the finish screen). */
  readonly timeInRace: number;
  readonly currentScreen: "movie_screen" | "finish_screen";
  readonly isRaceRunning: boolean;
  readonly serverTime: number;
}

export interface RoundDurations {
  readonly waitMs: number;
  readonly raceMs: number;
  readonly finishMs: number;
}

export interface RoundStarted {
  readonly roundId: number;
  readonly startedAt: number;
  /** When the race is planned to start (bets close). */
  readonly raceStartTime: number;
  readonly durations: RoundDurations;
  readonly runners: number;
  /**
   * Decimal odds of runners 1..n (index 0 is runner 1), two decimals, fixed
   * for the round: a winning bet pays floor(amount × odds). `place_bet`
   * repeats the odds it was placed at.
   */
  readonly odds: readonly number[];
  readonly serverTime: number;
}

export interface RaceStarted {
  readonly roundId: number;
  readonly raceStartTime: number;
  readonly raceDuration: number;
  /**
   * hex(SHA-256(seed)) of the seed drawn as betting closed. round_finished
   * reveals the seed; verifyRound() checks the two and the ranking.
   */
  readonly commitment: string;
  readonly serverTime: number;
}

export interface RoundFinished {
  readonly roundId: number;
  /** Runner numbers (1..runners) from first to last place. */
  readonly result: { readonly ranking: readonly number[]; readonly winner: number };
  /** The seed (64 hex digits) the ranking is computed from; its hash is race_started's commitment. */
  readonly seed: string;
  /** race_started's commitment, repeated so a finished round can be checked from this event alone. */
  readonly commitment: string;
  readonly finishedAt: number;
  /** When the next round is planned to start. */
  readonly nextRoundAt: number;
  readonly serverTime: number;
}

/**
 * A round that cannot be finished (its state in Redis was lost, or its sealed
 * seed cannot be opened): no result, every bet is void and its stake returned
 * (`bet_settled` with status `void`). The next round_started follows at once.
 */
export interface RoundVoided {
  readonly roundId: number;
  readonly reason: "state_lost" | "seed_unavailable";
  readonly serverTime: number;
}

export interface RaceEventPayloads {
  readonly round_started: RoundStarted;
  readonly timer_update: TimerUpdate;
  readonly race_started: RaceStarted;
  readonly race_sync: RaceSync;
  readonly round_finished: RoundFinished;
  readonly round_voided: RoundVoided;
}

/** What a subscribe to `race` returns at once: the state a screen should show now. */
export type RaceSnapshot =
  | { readonly event: "timer_update"; readonly data: TimerUpdate }
  | { readonly event: "race_sync"; readonly data: RaceSync };
