import { afterEach, describe, expect, it, vi } from "vitest";
import { ExpiryWheel, type Expiring } from "../../src/transport/expiry-wheel.js";

function item(log: string[], name: string): Expiring {
  return { expiryBucket: null, expire: () => log.push(name) };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("ExpiryWheel", () => {
  it("expires items within a second after their time, moves rescheduled ones, skips cancelled ones", () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "Date"] });
    const log: string[] = [];
    const wheel = new ExpiryWheel();
    const soon = item(log, "soon");
    const moved = item(log, "moved");
    const cancelled = item(log, "cancelled");
    const later = item(log, "later");
    const now = Date.now();
    wheel.schedule(soon, now + 100);
    wheel.schedule(moved, now + 100);
    wheel.schedule(moved, now + 60_000);
    wheel.schedule(cancelled, now + 100);
    wheel.cancel(cancelled);
    wheel.schedule(later, now + 60_000);
    // `soon` lands in the bucket of the second after now + 100 ms; one tick later at most it is gone.
    vi.advanceTimersByTime(2100);
    expect(log).toEqual(["soon"]);
    expect(soon.expiryBucket).toBeNull();
    expect(wheel.size()).toBe(2);
    wheel.stop();
  });
});
