/**
 * Pure round arithmetic: a round's plan, its state encoding, and the payloads
 * that describe it at a given instant. Every node computes screens from the
 * same stored state with these functions, so any node's snapshot agrees with
 * the authority's broadcasts.
 */

import { randomInt } from "node:crypto";
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
  /** Drawn when the round is planned, revealed only in round_finished. */
  readonly ranking: readonly number[];
  /** The round before, as last recorded: a new authority re-records it. */
  readonly previous: RoundRecord | null;
}

/** A uniformly random finishing order of runners 1..n. */
export function drawRanking(runners: number): number[] {
  const ranking = Array.from({ length: runners }, (_, i) => i + 1);
  for (let i = ranking.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [ranking[i], ranking[j]] = [ranking[j] as number, ranking[i] as number];
  }
  return ranking;
}

export function planRound(id: number, now: number, durations: RoundDurations, ranking: readonly number[], previous: RoundRecord | null): RoundState {
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
    runners: ranking.length,
    ranking,
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

export function toRecord(state: RoundState): RoundRecord {
  return {
    id: state.id,
    startedAt: state.startedAt,
    bettingClosesAt: state.raceStartAt,
    runners: state.runners,
    raceStartedAt: state.raceStartedAt,
    finishedAt: state.finishedAt,
    result: state.phase === "finished" ? state.ranking : null,
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
    ranking: JSON.stringify(state.ranking),
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
  const optional = (field: string): number | null => (hash[field] === undefined || hash[field] === "" ? null : Number(hash[field]));
  let ranking: number[];
  let previous: RoundRecord | null;
  try {
    ranking = JSON.parse(hash["ranking"] ?? "[]") as number[];
    previous = hash["previous"] === undefined || hash["previous"] === "" ? null : (JSON.parse(hash["previous"]) as RoundRecord);
  } catch {
    return null;
  }
  return { id, phase, startedAt, raceStartAt, finishAt, endAt, raceStartedAt: optional("raceStartedAt"), finishedAt: optional("finishedAt"), runners, ranking, previous };
}

/** When the race should end: a race that started late still runs its full length. */
export function finishDue(state: RoundState): number {
  return raceStart(state) + (state.finishAt - state.raceStartAt);
}

/** When the next round should start: the results show for their full length. */
export function endDue(state: RoundState): number {
  return (state.finishedAt ?? finishDue(state)) + (state.endAt - state.finishAt);
}
