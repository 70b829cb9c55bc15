/**
 * The hub against a broker that records calls: the hub's own bookkeeping
 * (first subscriber subscribes, last leaves after a delay, failures retry).
 * The Redis broker itself is exercised by the integration tests.
 */

import { afterEach, describe, expect, it, vi } from "vitest";
import type { Broker } from "../../src/broker/broker.js";
import { ChannelHub } from "../../src/hub/channel-hub.js";

class RecordingBroker implements Pick<Broker, "subscribe" | "unsubscribe"> {
  readonly calls: string[] = [];
  failNext = false;

  subscribe(channel: string): Promise<void> {
    this.calls.push(`sub ${channel}`);
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new Error("down"));
    }
    return Promise.resolve();
  }

  unsubscribe(channel: string): Promise<void> {
    this.calls.push(`unsub ${channel}`);
    return Promise.resolve();
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe("ChannelHub", () => {
  it("subscribes once for many local subscribers and unsubscribes when the last leaves", async () => {
    const broker = new RecordingBroker();
    const hub = new ChannelHub(broker, 0);
    await Promise.all([hub.acquire("race"), hub.acquire("race"), hub.acquire("race")]);
    expect(broker.calls).toEqual(["sub race"]);
    hub.release("race");
    hub.release("race");
    expect(broker.calls).toEqual(["sub race"]);
    hub.release("race");
    expect(broker.calls).toEqual(["sub race", "unsub race"]);
    expect(hub.size()).toBe(0);
  });

  it("keeps the subscription when a subscriber returns within the delay, drops it once the delay passes", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const broker = new RecordingBroker();
    const hub = new ChannelHub(broker, 50);
    await hub.acquire("race");
    hub.release("race");
    vi.advanceTimersByTime(49);
    await hub.acquire("race");
    vi.advanceTimersByTime(100);
    expect(broker.calls).toEqual(["sub race"]);
    hub.release("race");
    vi.advanceTimersByTime(49);
    expect(broker.calls).toEqual(["sub race"]);
    vi.advanceTimersByTime(1);
    expect(broker.calls).toEqual(["sub race", "unsub race"]);
    expect(hub.size()).toBe(0);
  });

  it("retries the broker after a failed subscribe, and never unsubscribes what it never had", async () => {
    const broker = new RecordingBroker();
    const hub = new ChannelHub(broker, 0);
    broker.failNext = true;
    await expect(hub.acquire("race")).rejects.toThrow("down");
    hub.release("race");
    expect(broker.calls).toEqual(["sub race"]);
    await hub.acquire("race");
    expect(broker.calls).toEqual(["sub race", "sub race"]);
    expect(hub.references("race")).toBe(1);
  });
});
