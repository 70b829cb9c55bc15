/**
 * Pure round arithmetic: a round's plan, its state encoding, and the payloads
 * that describe it at a given instant. Every node computes screens from the
 * same stored state with these functions, so any node's snapshot agrees with
 * the authority's broadcasts.
 */

import type { RaceSnapshot, RaceSync, RoundDurations, TimerUpdate } from "../../../shared/src/race-events.js";
import type { RoundRecord } from "../store/round-store.js";

export type RoundPhase = "waiting" | "racing" | "finished";

export interface RoundState {
  readonly id: number;
  readonly phase: RoundPhase;
  readonly startedAt: number;
  /** Planned instants; the actual ones are raceStartedAt / finishedAt. */
  readonly raceStartAt: number;
  readonly finishAt: number;
  readonly endAt: number;
  readonly raceStartedAt: number | null;
  readonly finishedAt: number | null;
  readonly runners: number;
  /** Decimal odds of runners 1..n, fixed when the round starts. */
  readonly odds: readonly number[];
  /** From the race start: hex SHA-256 of the seed drawn as betting closed. */
  readonly commitment: string | null;
  /**
   * Only while racing: the seed, sealed (SeedVault) so that whichever node
   * finishes the race reveals the committed seed, and nobody reading Redis
   * learns it earlier.
   */
  readonly sealedSeed: string | null;
  /** Only once finished: the revealed seed and the ranking it determines. */
  readonly seed: string | null;
  readonly ranking: readonly number[] | null;
  /** The round before, as last recorded: a new authority re-records it. */
  readonly previous: RoundRecord | null;
}

/**
 * Every runner's decimal odds: runners × (1 − margin), rounded down to two
 * decimals. All runners are equally likely (the ranking is a uniform
 * shuffle), so runners × 1 would be a fair book.
 */
export function oddsFor(runners: number, marginBp: number): number[] {
  const hundredths = Math.floor((runners * (10_000 - marginBp)) / 100);
  return Array.from({ length: runners }, () => hundredths / 100);
}

export function planRound(id: number, now: number, durations: RoundDurations, odds: readonly number[], previous: RoundRecord | null): RoundState {
  const raceStartAt = now + durations.waitMs;
  const finishAt = raceStartAt + durations.raceMs;
  return {
    id,
    phase: "waiting",
    startedAt: now,
    raceStartAt,
    finishAt,
    endAt: finishAt + durations.finishMs,
    raceStartedAt: null,
    finishedAt: null,
    runners: odds.length,
    odds,
    commitment: null,
    sealedSeed: null,
    seed: null,
    ranking: null,
    previous,
  };
}

/**
 * When the race phase started (or would have): the actual start once
 * recorded, else the plan. A late transition after a takeover shifts the
 * rest of the round, never shortens it.
 */
function raceStart(state: RoundState): number {
  return state.raceStartedAt ?? state.raceStartAt;
}

export function timerUpdate(state: RoundState, now: number): TimerUpdate {
  const totalDuration = state.raceStartAt - state.startedAt;
  const timeLeft = Math.max(0, Math.min(totalDuration, state.raceStartAt - now));
  return {
    roundId: state.id,
    timer: { timeLeft, totalDuration, percentage: totalDuration === 0 ? 0 : Math.round((timeLeft / totalDuration) * 1000) / 10 },
    currentScreen: "game_screen",
    odds: state.odds,
    serverTime: now,
  };
}

export function raceSync(state: RoundState, now: number): RaceSync {
  const raceStartTime = raceStart(state);
  return {
    roundId: state.id,
    raceStartTime,
    timeInRace: Math.max(0, now - raceStartTime),
    currentScreen: state.phase === "finished" ? "finish_screen" : "movie_screen",
    isRaceRunning: state.phase === "racing",
    serverTime: now,
  };
}

export function snapshot(state: RoundState, now: number): RaceSnapshot {
  return state.phase === "waiting" ? { event: "timer_update", data: timerUpdate(state, now) } : { event: "race_sync", data: raceSync(state, now) };
}

/** What Postgres may hold of the round now: never the seed or the ranking before the round finished. */
export function toRecord(state: RoundState): RoundRecord {
  const finished = state.phase === "finished";
  return {
    id: state.id,
    startedAt: state.startedAt,
    bettingClosesAt: state.raceStartAt,
    runners: state.runners,
    odds: state.odds,
    raceStartedAt: state.raceStartedAt,
    commitment: state.commitment,
    finishedAt: state.finishedAt,
    seed: finished ? state.seed : null,
    result: finished ? state.ranking : null,
  };
}

// ---- storage encoding (a Redis hash of strings) -------------------------

export function encodeState(state: RoundState): Record<string, string> {
  return {
    id: String(state.id),
    phase: state.phase,
    startedAt: String(state.startedAt),
    raceStartAt: String(state.raceStartAt),
    finishAt: String(state.finishAt),
    endAt: String(state.endAt),
    raceStartedAt: state.raceStartedAt === null ? "" : String(state.raceStartedAt),
    finishedAt: state.finishedAt === null ? "" : String(state.finishedAt),
    runners: String(state.runners),
    odds: JSON.stringify(state.odds),
    commitment: state.commitment ?? "",
    sealedSeed: state.sealedSeed ?? "",
    seed: state.seed ?? "",
    ranking: state.ranking === null ? "" : JSON.stringify(state.ranking),
    previous: state.previous === null ? "" : JSON.stringify(state.previous),
  };
}

function isPhase(value: string | undefined): value is RoundPhase {
  return value === "waiting" || value === "racing" || value === "finished";
}

/** Null for an empty or foreign hash: the caller starts from scratch. */
export function decodeState(hash: Readonly<Record<string, string>>): RoundState | null {
  const phase = hash["phase"];
  const numbers = ["id", "startedAt", "raceStartAt", "finishAt", "endAt", "runners"].map((field) => Number(hash[field]));
  if (!isPhase(phase) || numbers.some((n) => !Number.isFinite(n))) return null;
  const [id, startedAt, raceStartAt, finishAt, endAt, runners] = numbers as [number, number, number, number, number, number];
  const text = (field: string): string | null => {
    const value = hash[field];
    return value === undefined || value === "" ? null : value;
  };
  const optional = (field: string): number | null => {
    const value = text(field);
    return value === null ? null : Number(value);
  };
  let odds: number[];
  let ranking: number[] | null;
  let previous: RoundRecord | null;
  try {
    odds = JSON.parse(hash["odds"] ?? "null") as number[];
    const rankingText = text("ranking");
    ranking = rankingText === null ? null : (JSON.parse(rankingText) as number[]);
    const previousText = text("previous");
    previous = previousText === null ? null : (JSON.parse(previousText) as RoundRecord);
  } catch {
    return null;
  }
  // A hash from before odds existed (or a foreign one): not a round this code can continue.
  if (!Array.isArray(odds) || odds.length !== runners) return null;
  return {
    id,
    phase,
    startedAt,
    raceStartAt,
    finishAt,
    endAt,
    raceStartedAt: optional("raceStartedAt"),
    finishedAt: optional("finishedAt"),
    runners,
    odds,
    commitment: text("commitment"),
    sealedSeed: text("sealedSeed"),
    seed: text("seed"),
    ranking,
    previous,
  };
}

/** When the race should end: a race that started late still runs its full length. */
export function finishDue(state: RoundState): number {
  return raceStart(state) + (state.finishAt - state.raceStartAt);
}

/** When the next round should start: the results show for their full length. */
export function endDue(state: RoundState): number {
  return (state.finishedAt ?? finishDue(state)) + (state.endAt - state.finishAt);
}
