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
  readonly serverTime: number;
}

export interface RaceStarted {
  readonly roundId: number;
  readonly raceStartTime: number;
  readonly raceDuration: number;
  readonly serverTime: number;
}

export interface RoundFinished {
  readonly roundId: number;
  /** Runner numbers (1..runners) from first to last place. */
  readonly result: { readonly ranking: readonly number[]; readonly winner: number };
  readonly finishedAt: number;
  /** When the next round is planned to start. */
  readonly nextRoundAt: number;
  readonly serverTime: number;
}

export interface RaceEventPayloads {
  readonly round_started: RoundStarted;
  readonly timer_update: TimerUpdate;
  readonly race_started: RaceStarted;
  readonly race_sync: RaceSync;
  readonly round_finished: RoundFinished;
}

/** What a subscribe to `race` returns at once: the state a screen should show now. */
export type RaceSnapshot =
  | { readonly event: "timer_update"; readonly data: TimerUpdate }
  | { readonly event: "race_sync"; readonly data: RaceSync };
