/**
 * The runners' drawn positions: before round_finished they depend on the
 * runner and the race's progress only (the functions take no ranking), start
 * and end level, never run backwards and never reach the line; after it, the
 * finishing order stands ahead of where everybody was.
 */

import { describe, expect, it } from "vitest";
import { finishPositions, NEUTRAL_END, neutralPosition, raceProgress } from "../race-motion.js";

const RUNNERS = [1, 2, 3, 4, 5, 6, 7, 8];
const STEPS = 400;

describe("neutral race motion", () => {
  it("starts everybody at 0 and ends everybody level at NEUTRAL_END", () => {
    for (const runner of RUNNERS) {
      expect(neutralPosition(runner, 0)).toBe(0);
      expect(neutralPosition(runner, 1)).toBeCloseTo(NEUTRAL_END, 12);
    }
  });

  it("moves every runner forward all the time, short of the line, and not in step", () => {
    const spreads: number[] = [];
    const previous = new Map(RUNNERS.map((runner) => [runner, -1]));
    for (let step = 0; step <= STEPS; step++) {
      const positions = RUNNERS.map((runner) => neutralPosition(runner, step / STEPS));
      positions.forEach((position, i) => {
        const runner = RUNNERS[i]!;
        expect(position).toBeGreaterThan(previous.get(runner)!);
        expect(position).toBeLessThanOrEqual(NEUTRAL_END);
        previous.set(runner, position);
      });
      spreads.push(Math.max(...positions) - Math.min(...positions));
    }
    // Mid-race the field is visibly spread out (on a 600 px track, more than a runner's width).
    expect(Math.max(...spreads)).toBeGreaterThan(0.05);
  });

  it("clamps progress outside the race", () => {
    expect(neutralPosition(3, -0.5)).toBe(0);
    expect(neutralPosition(3, 7)).toBeCloseTo(NEUTRAL_END, 12);
  });
});

describe("finishing order", () => {
  it("puts the winner on the line and each later place a step behind, none behind NEUTRAL_END", () => {
    const ranking = [6, 5, 2, 4, 7, 8, 1, 3];
    const positions = finishPositions(ranking);
    expect(positions.get(6)).toBe(1);
    const ordered = ranking.map((runner) => positions.get(runner)!);
    for (let place = 1; place < ordered.length; place++) expect(ordered[place]).toBeLessThan(ordered[place - 1]!);
    expect(Math.min(...ordered)).toBeGreaterThanOrEqual(NEUTRAL_END - 1e-12);
  });

  it("handles a field of one", () => {
    expect([...finishPositions([1])]).toEqual([[1, 1]]);
  });
});

describe("race progress", () => {
  it("is the share of the race when its length is known", () => {
    expect(raceProgress(0, 20_000)).toBe(0);
    expect(raceProgress(5000, 20_000)).toBe(0.25);
    expect(raceProgress(25_000, 20_000)).toBe(1);
  });

  it("slows towards the end without ever finishing when the length is not known (joined mid-race)", () => {
    const a = raceProgress(5000, null);
    const b = raceProgress(50_000, null);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(a);
    expect(b).toBeLessThan(1);
  });
});
