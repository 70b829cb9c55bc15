/**
 * Where the runners are drawn on the track. A position is a share of the
 * track: 0 at the start, 1 on the finish line.
 *
 * While the race runs the result is secret (the seed is drawn at the race
 * start and revealed only by round_finished), so the page has nothing to
 * draw the real race from. It draws neutral motion instead: a function of the
 * runner number and the race's progress only, which takes no ranking and so
 * cannot leak one. Everybody starts together and arrives together at
 * NEUTRAL_END when the race time runs out; round_finished then moves each
 * runner forward to its place, the winner onto the line.
 */

/** Where every runner stands when the race time is up and the result is not yet known. */
export const NEUTRAL_END = 0.8;

/** Golden angle (radians): runner phases that never line up in a visible pattern. */
const PHASE_STEP = 2.399963;

/**
 * A runner's position at `progress` (0..1) of the race, before the result is
 * known. Deterministic; the same for every round and every ranking. The sway
 * is held small enough (its slope below NEUTRAL_END's) that no runner ever
 * moves backwards, and vanishes at both ends.
 */
export function neutralPosition(runner: number, progress: number): number {
  const p = Math.min(1, Math.max(0, progress));
  const phase = runner * PHASE_STEP;
  const envelope = Math.sin(Math.PI * p);
  const sway = 0.04 * Math.sin(2 * Math.PI * 1.1 * p + phase) + 0.02 * Math.sin(2 * Math.PI * 2.3 * p + 2 * phase);
  return Math.min(NEUTRAL_END, Math.max(0, p * NEUTRAL_END + envelope * sway * 0.75));
}

/**
 * Positions once round_finished told the ranking (runner numbers, first
 * place first): the winner on the line, each later place a step behind, all
 * at or ahead of NEUTRAL_END so nobody moves backwards.
 */
export function finishPositions(ranking: readonly number[]): ReadonlyMap<number, number> {
  const step = ranking.length > 1 ? Math.min(0.06, (1 - NEUTRAL_END) / (ranking.length - 1)) : 0;
  return new Map(ranking.map((runner, place) => [runner, 1 - place * step]));
}

/**
 * How far into the race `timeInRace` is, 0..1. A page that joined during the
 * race has not seen its duration (race_sync does not carry it): it then shows
 * progress that slows towards the end instead of a made-up finish time.
 */
export function raceProgress(timeInRace: number, raceMs: number | null): number {
  if (timeInRace <= 0) return 0;
  if (raceMs !== null && raceMs > 0) return Math.min(1, timeInRace / raceMs);
  return timeInRace / (timeInRace + 10_000);
}
