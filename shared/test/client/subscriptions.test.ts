import { describe, expect, it } from "vitest";
import type { TimerUpdate } from "../../src/race-events.js";
import type { DeliveryMeta } from "../../src/client/types.js";
import { flush } from "./fakes.js";
import { closedAfterEach, type Harness } from "./harness.js";

const start = closedAfterEach();
const started = (): Promise<Harness> => start();

function tick(roundId: number, timeLeft: number, serverTime: number): TimerUpdate {
  return { roundId, timer: { timeLeft, totalDuration: 60_000, percentage: (timeLeft / 60_000) * 100 }, currentScreen: "game_screen", odds: [7.6, 7.6], serverTime };
}

function message(channel: string, event: string, data: unknown, offset: number, epoch = "e1"): Record<string, unknown> {
  return { type: "message", channel, event, data, offset, epoch, ts: 1 };
}

describe("subscriptions", () => {
  it("subscribes after the welcome and hands the snapshot to typed handlers first", async () => {
    const h = await started();
    const seen: Array<[number, DeliveryMeta]> = [];
    const sub = h.client.subscribe("race", { timer_update: (data, meta) => seen.push([data.timer.timeLeft, meta]) });
    expect(h.server.last().sent).toEqual([]);
    h.server.last().accept();
    expect(h.server.last().sentOfType("subscribe")).toEqual([{ type: "subscribe", channel: "race", id: 1 }]);

    h.server.last().replyOk("subscribe", { channel: "race", snapshot: { event: "timer_update", data: tick(7, 30_000, 1000) } });
    await sub.ready();
    h.server.last().receive(message("race", "timer_update", tick(7, 29_500, 1500), 41));
    expect(seen.map(([left, meta]) => [left, meta.fromSnapshot, meta.offset])).toEqual([
      [30_000, true, null],
      [29_500, false, 41],
    ]);
  });

  it("drops a snapshot older than a tick that beat the reply", async () => {
    const h = await started();
    const lefts: number[] = [];
    h.client.subscribe("race", { timer_update: (data) => lefts.push(data.timer.timeLeft) });
    h.server.last().accept();
    h.server.last().receive(message("race", "timer_update", tick(7, 29_500, 1500), 41));
    h.server.last().replyOk("subscribe", { channel: "race", snapshot: { event: "timer_update", data: tick(7, 30_000, 1000) } });
    await Promise.resolve();
    expect(lefts).toEqual([29_500]);
  });

  it("does not subscribe explicitly to the personal channel the server joined", async () => {
    const h = await started();
    const cash: unknown[] = [];
    const sub = h.client.subscribe("user:alice", { portfolio_update: (data) => cash.push(data.cash) });
    h.server.last().accept();
    await sub.ready();
    h.server.last().receive(message("user:alice", "portfolio_update", { cash: 100 }, 1));
    expect(h.server.last().sentOfType("subscribe")).toEqual([]);
    expect(cash).toEqual([100]);
  });

  it("attaches to the personal channel without a frame when subscribed after the welcome", async () => {
    const h = await started();
    h.server.last().accept();
    const sub = h.client.subscribe("user:alice", {});
    await sub.ready();
    expect(h.server.last().sentOfType("subscribe")).toEqual([]);
  });

  it("resubscribes every channel after a reconnect: from its last message, or from the position it joined at", async () => {
    const h = await started();
    const offsets: Array<number | null> = [];
    h.client.subscribe("race", { message: (_event, _data, meta) => offsets.push(meta.offset) });
    h.client.subscribe("forecasts", {});
    h.client.subscribe("vip", {});
    h.server.last().accept();
    h.server.last().replySubscribe("race", { offset: 9, epoch: "e1" });
    h.server.last().replySubscribe("forecasts", { offset: 4, epoch: "f1" });
    // A server that keeps no history answers without a position.
    h.server.last().replySubscribe("vip");
    await flush();
    h.server.last().receive(message("race", "timer_update", tick(1, 1, 1), 10));
    h.server.last().receive(message("race", "timer_update", tick(1, 1, 2), 11));

    h.server.last().drop();
    await h.timers.advance(h.timers.nextDelay() ?? 0);
    h.server.last().accept();
    expect(h.server.last().sentOfType("subscribe").map(({ channel, since }) => ({ channel, since }))).toEqual([
      { channel: "race", since: { offset: 11, epoch: "e1" } },
      { channel: "forecasts", since: { offset: 4, epoch: "f1" } },
      { channel: "vip", since: undefined },
    ]);
    expect(offsets).toEqual([10, 11]);
    expect(h.client.position("race")).toEqual({ offset: 11, epoch: "e1" });
  });

  it("passes refusals to the channel's error handler and rejects ready()", async () => {
    const h = await started();
    const errors: string[] = [];
    const sub = h.client.subscribe("vip", { error: (error) => errors.push(error.code) });
    h.server.last().accept();
    const request = h.server.last().sentOfType("subscribe")[0]!;
    h.server.last().receive({ type: "reply", id: request["id"], ok: false, error: { code: "forbidden", message: "not allowed to subscribe to vip" } });
    await expect(sub.ready()).rejects.toMatchObject({ code: "forbidden", channel: "vip" });
    expect(errors).toEqual(["forbidden"]);
  });

  for (const code of ["unavailable", "rate_limited", "subscribe_rate_limited"] as const) {
    it(`retries a subscribe refused as ${code} on the same socket`, async () => {
      const h = await started();
      h.client.subscribe("race", {});
      h.server.last().accept();
      const first = h.server.last().sentOfType("subscribe")[0]!;
      h.server.last().receive({ type: "reply", id: first["id"], ok: false, error: { code, message: "retry" } });
      await flush();
      expect(h.timers.nextDelay()).toBe(500);
      await h.timers.advance(500);
      expect(h.server.last().sentOfType("subscribe")).toHaveLength(2);
      expect(h.server.sockets).toHaveLength(1);
    });
  }

  it("keeps delivering to other handlers when one throws, and reports it", async () => {
    const h = await started();
    const got: number[] = [];
    h.client.subscribe("forecasts", { forecast_update: () => { throw new Error("boom"); } });
    h.client.subscribe("forecasts", { forecast_update: (data) => got.push(data.p ?? -1) });
    h.server.last().accept();
    h.server.last().replySubscribe("forecasts");
    await flush();
    h.server.last().receive(message("forecasts", "forecast_update", { asset: "BTC", p: 0.6 }, 1));
    expect(got).toEqual([0.6]);
    expect(h.of("error").map((e) => e.code)).toEqual(["handler_failed"]);
  });

  it("unsubscribes when the last handler set leaves, and not before", async () => {
    const h = await started();
    const a = h.client.subscribe("forecasts", {});
    const b = h.client.subscribe("forecasts", {});
    h.server.last().accept();
    h.server.last().replyOk("subscribe");
    await flush();
    a.unsubscribe();
    expect(h.server.last().sentOfType("unsubscribe")).toEqual([]);
    b.unsubscribe();
    expect(h.server.last().sentOfType("unsubscribe").map((f) => f["channel"])).toEqual(["forecasts"]);
    expect(h.client.position("forecasts")).toBeUndefined();
  });

  it("unsubscribes a channel whose subscribe is still in flight", async () => {
    const h = await started();
    const sub = h.client.subscribe("forecasts", {});
    h.server.last().accept();
    sub.unsubscribe();
    expect(h.server.last().sentOfType("unsubscribe").map((f) => f["channel"])).toEqual(["forecasts"]);
  });
});
