import { describe, expect, it } from "vitest";
import { backoffCeiling, backoffDelay, drainDelay, refreshDelay } from "../../src/client/backoff.js";
import { seededRandom } from "./fakes.js";

const policy = { initialDelayMs: 1000, maxDelayMs: 30_000 };

describe("backoff", () => {
  it("doubles the ceiling per attempt up to the cap", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffCeiling(n, policy))).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  it("treats attempt 0 and below as the first, and never overflows", () => {
    expect(backoffCeiling(0, policy)).toBe(1000);
    expect(backoffCeiling(-3, policy)).toBe(1000);
    expect(backoffCeiling(10_000, policy)).toBe(30_000);
    expect(backoffDelay(10_000, policy, () => 0.999_999)).toBeLessThan(30_000);
  });

  it("keeps full-jitter delays within [0, ceiling)", () => {
    for (const attempt of [1, 2, 5, 9]) {
      const ceiling = backoffCeiling(attempt, policy);
      expect(backoffDelay(attempt, policy, () => 0)).toBe(0);
      expect(backoffDelay(attempt, policy, () => 0.999_999_9)).toBe(ceiling - 1);
    }
  });

  it("spreads full-jitter delays uniformly over the whole window", () => {
    const random = seededRandom(42);
    const ceiling = backoffCeiling(3, policy);
    const samples = Array.from({ length: 20_000 }, () => backoffDelay(3, policy, random));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...samples)).toBeLessThan(ceiling);
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    expect(Math.abs(mean - ceiling / 2)).toBeLessThan(ceiling * 0.02);
    // Every tenth of the window gets about a tenth of the clients: no bunching at either end.
    const deciles = Array.from({ length: 10 }, () => 0);
    for (const delay of samples) deciles[Math.floor((delay / ceiling) * 10)]! += 1;
    for (const count of deciles) expect(count / samples.length).toBeCloseTo(0.1, 1);
  });

  it("spreads drain reconnects over the jitter window only", () => {
    const random = seededRandom(7);
    const delays = Array.from({ length: 1000 }, () => drainDelay(1000, random));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(1000);
    expect(Math.max(...delays) - Math.min(...delays)).toBeGreaterThan(900);
  });
});

describe("refresh timing", () => {
  const now = 1_700_000_000_000;

  it("refreshes 30 s before expiry for long-lived tokens", () => {
    expect(refreshDelay(now + 3_600_000, now, 30_000)).toBe(3_570_000);
  });

  it("refreshes 10 % of the lifetime before expiry when that is shorter", () => {
    expect(refreshDelay(now + 60_000, now, 30_000)).toBe(54_000);
    expect(refreshDelay(now + 5000, now, 30_000)).toBe(4500);
  });

  it("refreshes at once when the token is already expired", () => {
    expect(refreshDelay(now - 1, now, 30_000)).toBe(0);
  });
});
