import { describe, expect, it } from "vitest";
import { RetryBackoff } from "../../src/time/retry-backoff.js";

describe("RetryBackoff", () => {
  it("doubles the jitter window per consecutive failure up to the cap, and starts over after reset()", () => {
    const top = new RetryBackoff({ initialDelayMs: 100, maxDelayMs: 500 }, () => 0.999_999);
    expect([top.next(), top.next(), top.next(), top.next()]).toEqual([99, 199, 399, 499]);
    top.reset();
    expect(top.next()).toBe(99);
  });

  it("draws each delay uniformly below the window (full jitter)", () => {
    const bottom = new RetryBackoff({ initialDelayMs: 100, maxDelayMs: 500 }, () => 0);
    expect([bottom.next(), bottom.next()]).toEqual([0, 0]);
    const half = new RetryBackoff({ initialDelayMs: 100, maxDelayMs: 500 }, () => 0.5);
    expect([half.next(), half.next(), half.next()]).toEqual([50, 100, 200]);
  });
});
