import { describe, expect, it } from "vitest";
import { continuity } from "../../src/client/resume.js";
import type { DeliveryMeta, ResumedInfo } from "../../src/client/types.js";
import type { TimerUpdate } from "../../src/race-events.js";
import { flush } from "./fakes.js";
import { closedAfterEach, type Harness } from "./harness.js";

const started = closedAfterEach();

function tick(timeLeft: number, serverTime: number): TimerUpdate {
  return { roundId: 7, timer: { timeLeft, totalDuration: 60_000, percentage: (timeLeft / 60_000) * 100 }, currentScreen: "game_screen", odds: [7.6, 7.6], serverTime };
}

function message(channel: string, offset: number, epoch = "e1", data: unknown = { offset }): Record<string, unknown> {
  return { type: "message", channel, event: "timer_update", data, offset, epoch, ts: 1 };
}

/** Everything a channel's handlers saw, in order: deliveries as `offset` (`snapshot@serverTime`), resumes as `resumed:<recovered>`. */
function recorder(): { log: string[]; handlers: { message: (event: string, data: unknown, meta: DeliveryMeta) => void; resumed: (info: ResumedInfo) => void } } {
  const log: string[] = [];
  return {
    log,
    handlers: {
      message: (_event, data, meta) => log.push(meta.fromSnapshot ? `snapshot@${(data as TimerUpdate).serverTime}` : String(meta.offset)),
      resumed: (info) => log.push(`resumed:${info.recovered}`),
    },
  };
}

/** `resumed` events of one channel (the fakes' welcome has no positions, so the personal channel resumes unrecovered too). */
function resumedOn(h: Harness, channel: string): ResumedInfo[] {
  return h.of("resumed").filter((info) => info.channel === channel);
}

/** A client whose subscription to `channel` was answered at `offset` of epoch e1, with its handlers' log. */
async function subscribedAt(channel: string, offset: number): Promise<{ h: Harness; log: string[] }> {
  const h = await started();
  const { log, handlers } = recorder();
  h.client.subscribe(channel, handlers);
  h.server.last().accept();
  h.server.last().replySubscribe(channel, { offset, epoch: "e1" });
  await flush();
  return { h, log };
}

async function reconnect(h: Harness, welcome: Parameters<Harness["server"]["sockets"][number]["accept"]>[0] = {}): Promise<void> {
  h.server.last().drop();
  await h.timers.advance(h.timers.nextDelay() ?? 0);
  h.server.last().accept(welcome);
}

describe("continuity of a delivery", () => {
  it("is the next one after the last processed offset, or the first when none is known", () => {
    expect(continuity(undefined, 42, "e1")).toBe("next");
    expect(continuity({ offset: 41, epoch: "e1" }, 42, "e1")).toBe("next");
  });

  it("is a duplicate at or below the last offset of the same epoch", () => {
    expect(continuity({ offset: 41, epoch: "e1" }, 41, "e1")).toBe("duplicate");
    expect(continuity({ offset: 41, epoch: "e1" }, 3, "e1")).toBe("duplicate");
  });

  it("breaks on skipped offsets, and on another epoch whatever the offset", () => {
    expect(continuity({ offset: 41, epoch: "e1" }, 43, "e1")).toBe("offset_gap");
    expect(continuity({ offset: 41, epoch: "e1" }, 42, "e2")).toBe("epoch_changed");
    expect(continuity({ offset: 41, epoch: "e1" }, 1, "e2")).toBe("epoch_changed");
  });
});

describe("resume across reconnects", () => {
  it("resumes the personal channel in the connect URL, from the welcome's position and then from its last message", async () => {
    const h = await started();
    const { log, handlers } = recorder();
    h.client.subscribe("user:alice", handlers);
    h.server.last().accept({ positions: { "user:alice": { offset: 3, epoch: "u1" } } });
    expect(h.client.position("user:alice")).toEqual({ offset: 3, epoch: "u1" });

    await reconnect(h, { recovered: true, positions: { "user:alice": { offset: 5, epoch: "u1" } } });
    expect(h.server.last().url).toBe("ws://gw.test/ws?since=3:u1");
    expect(h.of("resumed")).toEqual([{ channel: "user:alice", recovered: true, cause: "reconnect", since: { offset: 3, epoch: "u1" }, position: { offset: 5, epoch: "u1" } }]);
    // The missed messages follow the welcome; the seam repeats one.
    h.server.last().receive(message("user:alice", 4, "u1"));
    h.server.last().receive(message("user:alice", 5, "u1"));
    h.server.last().receive(message("user:alice", 5, "u1"));
    h.server.last().receive(message("user:alice", 6, "u1"));
    expect(log).toEqual(["resumed:true", "4", "5", "6"]);
    expect(h.client.duplicates).toBe(1);

    await reconnect(h, { recovered: false, positions: { "user:alice": { offset: 90, epoch: "u1" } } });
    expect(h.server.last().url).toBe("ws://gw.test/ws?since=6:u1");
    expect(h.of("resumed").at(-1)).toEqual({ channel: "user:alice", recovered: false, cause: "reconnect", since: { offset: 6, epoch: "u1" }, position: { offset: 90, epoch: "u1" } });
    expect(h.client.position("user:alice")).toEqual({ offset: 90, epoch: "u1" });
  });

  it("keeps the personal channel's position when its handlers leave", async () => {
    const h = await started();
    h.server.last().accept({ positions: { "user:alice": { offset: 3, epoch: "u1" } } });
    h.server.last().receive(message("user:alice", 4, "u1"));
    const sub = h.client.subscribe("user:alice", {});
    sub.unsubscribe();
    expect(h.server.last().sentOfType("unsubscribe")).toEqual([]);
    await reconnect(h);
    expect(h.server.last().url).toBe("ws://gw.test/ws?since=4:u1");
  });

  it("forgets the personal channel of a previous user when the token changes hands", async () => {
    const h = await started();
    h.server.last().accept({ positions: { "user:alice": { offset: 3, epoch: "u1" } } });
    await reconnect(h, { user: "bob", channels: ["user:bob"], positions: { "user:bob": { offset: 8, epoch: "b1" } } });
    await flush();
    expect(h.server.last().sentOfType("subscribe")).toEqual([]);
    expect(h.of("error")).toEqual([]);
    expect(h.client.position("user:alice")).toBeUndefined();
    expect(h.client.position("user:bob")).toEqual({ offset: 8, epoch: "b1" });
  });

  it("says recovered: false when it had no position to resume from", async () => {
    const h = await started();
    // A server that keeps no history sends no positions.
    h.server.last().accept();
    await reconnect(h);
    expect(h.server.last().url).toBe("ws://gw.test/ws");
    expect(h.of("resumed")).toEqual([{ channel: "user:alice", recovered: false, cause: "reconnect", since: null, position: null }]);
  });

  it("replays a recovered channel after its reply, dropping repeats by offset", async () => {
    const { h, log } = await subscribedAt("forecasts", 10);
    await reconnect(h);
    expect(h.server.last().sentOfType("subscribe").at(-1)).toMatchObject({ channel: "forecasts", since: { offset: 10, epoch: "e1" } });
    h.server.last().replySubscribe("forecasts", { offset: 12, epoch: "e1", recovered: true });
    // Delivered in the same read as the reply, before its promise settles.
    for (const offset of [11, 12, 12, 11, 13]) h.server.last().receive(message("forecasts", offset));
    await flush();
    expect(log).toEqual(["resumed:true", "11", "12", "13"]);
    expect(h.client.duplicates).toBe(2);
    expect(resumedOn(h, "forecasts")).toEqual([{ channel: "forecasts", recovered: true, cause: "reconnect", since: { offset: 10, epoch: "e1" }, position: { offset: 12, epoch: "e1" } }]);
  });

  it("re-applies the race snapshot when not recovered, even one older than the last tick before the loss", async () => {
    const { h, log } = await subscribedAt("race", 9);
    h.server.last().receive(message("race", 10, "e1", tick(30_000, 5000)));
    await reconnect(h);
    // Another node, whose clock is a little behind the first one's.
    h.server.last().replySubscribe("race", { offset: 40, epoch: "e1", recovered: false, snapshot: { event: "timer_update", data: tick(12_000, 4900) } });
    await flush();
    h.server.last().receive(message("race", 40));
    h.server.last().receive(message("race", 41));
    expect(log).toEqual(["10", "resumed:false", "snapshot@4900", "41"]);
    expect(h.client.position("race")).toEqual({ offset: 41, epoch: "e1" });
  });

  it("holds deliveries that beat a reply and hands them over after it, from the reply's position", async () => {
    const { h, log } = await subscribedAt("race", 9);
    await reconnect(h);
    // Not recovered: the server joined the socket at 40 before it read the snapshot.
    h.server.last().receive(message("race", 41, "e1", tick(20_000, 8000)));
    expect(log).toEqual([]);
    h.server.last().replySubscribe("race", { offset: 40, epoch: "e1", recovered: false, snapshot: { event: "timer_update", data: tick(20_400, 7600) } });
    await flush();
    // The tick is newer than the snapshot, so the snapshot is not applied over it.
    expect(log).toEqual(["resumed:false", "41"]);
  });

  it("drops what it cannot hold before a reply, then resyncs on the gap that leaves", async () => {
    const h = await started();
    h.client.subscribe("forecasts", {});
    h.server.last().accept();
    for (let offset = 11; offset <= 1011; offset++) h.server.last().receive(message("forecasts", offset));
    h.server.last().replySubscribe("forecasts", { offset: 10, epoch: "e1" });
    await flush();
    expect(h.client.position("forecasts")).toEqual({ offset: 1010, epoch: "e1" });
    h.server.last().receive(message("forecasts", 1012));
    expect(h.server.last().sentOfType("unsubscribe")).toEqual([{ type: "unsubscribe", channel: "forecasts", id: 2 }]);
  });
});

describe("resync on the open socket", () => {
  it("after a gap frame: leaves, drops what follows the hole, joins again from the last message processed", async () => {
    const { h, log } = await subscribedAt("race", 9);
    h.server.last().receive(message("race", 10));
    h.server.last().receive({ type: "gap", channel: "race", offset: 10, epoch: "e1", reason: "history_lost" });
    h.server.last().receive(message("race", 12));
    expect(h.server.last().sentOfType("unsubscribe").map((f) => f["channel"])).toEqual(["race"]);
    expect(h.server.last().sentOfType("subscribe")).toHaveLength(1);

    h.server.last().replyOk("unsubscribe", { channel: "race" });
    await flush();
    expect(h.server.last().sentOfType("subscribe").at(-1)).toMatchObject({ channel: "race", since: { offset: 10, epoch: "e1" } });
    h.server.last().replySubscribe("race", { offset: 12, epoch: "e1", recovered: false, snapshot: { event: "timer_update", data: tick(1000, 10) } });
    await flush();
    h.server.last().receive(message("race", 13));
    expect(log).toEqual(["10", "resumed:false", "snapshot@10", "13"]);
    expect(h.of("resumed")).toEqual([{ channel: "race", recovered: false, cause: "history_lost", since: { offset: 10, epoch: "e1" }, position: { offset: 12, epoch: "e1" } }]);
    expect(h.client.state).toBe("connected");
    expect(h.server.sockets).toHaveLength(1);
  });

  it("resyncs by itself when a delivery changes the epoch or skips offsets", async () => {
    const h = await started();
    h.client.subscribe("race", {});
    h.client.subscribe("forecasts", {});
    h.server.last().accept();
    h.server.last().replySubscribe("race", { offset: 9, epoch: "e1" });
    h.server.last().replySubscribe("forecasts", { offset: 9, epoch: "f1" });
    await flush();
    h.server.last().receive(message("race", 1, "e2"));
    h.server.last().receive(message("forecasts", 11, "f1"));
    for (const channel of ["race", "forecasts"]) h.server.last().receive({ type: "reply", id: h.server.last().sentOfType("unsubscribe").find((f) => f["channel"] === channel)?.["id"], ok: true, channel });
    await flush();
    h.server.last().replySubscribe("race", { offset: 1, epoch: "e2", recovered: false });
    h.server.last().replySubscribe("forecasts", { offset: 11, epoch: "f1", recovered: true });
    await flush();
    expect(h.of("resumed").map(({ channel, cause, recovered }) => ({ channel, cause, recovered }))).toEqual([
      { channel: "race", cause: "epoch_changed", recovered: false },
      { channel: "forecasts", cause: "offset_gap", recovered: true },
    ]);
    expect(h.client.position("race")).toEqual({ offset: 1, epoch: "e2" });
    // Recovered: the missed offset 10 comes next.
    expect(h.client.position("forecasts")).toEqual({ offset: 9, epoch: "f1" });
  });

  it("resyncs the personal channel with an explicit subscribe", async () => {
    const h = await started();
    h.server.last().accept({ positions: { "user:alice": { offset: 3, epoch: "u1" } } });
    h.server.last().receive({ type: "gap", channel: "user:alice", offset: 3, epoch: "u1", reason: "unavailable" });
    h.server.last().replyOk("unsubscribe", { channel: "user:alice" });
    await flush();
    expect(h.server.last().sentOfType("subscribe")).toEqual([{ type: "subscribe", channel: "user:alice", since: { offset: 3, epoch: "u1" }, id: 2 }]);
    h.server.last().replySubscribe("user:alice", { offset: 5, epoch: "u1", recovered: true });
    await flush();
    expect(h.of("resumed")).toMatchObject([{ channel: "user:alice", cause: "unavailable", recovered: true }]);
  });

  it("leaves the rejoin to the reconnect when the socket drops meanwhile", async () => {
    const h = await started();
    h.client.subscribe("forecasts", {});
    h.server.last().accept();
    h.server.last().replySubscribe("forecasts", { offset: 9, epoch: "f1" });
    await flush();
    h.server.last().receive({ type: "gap", channel: "forecasts", offset: 9, epoch: "f1", reason: "history_lost" });
    await reconnect(h);
    await flush();
    expect(h.server.sockets[0]?.sentOfType("subscribe")).toHaveLength(1);
    expect(h.server.last().sentOfType("subscribe")).toEqual([{ type: "subscribe", channel: "forecasts", since: { offset: 9, epoch: "f1" }, id: 3 }]);
    h.server.last().replySubscribe("forecasts", { offset: 9, epoch: "f1", recovered: true });
    await flush();
    expect(resumedOn(h, "forecasts")).toMatchObject([{ cause: "reconnect", recovered: true }]);
  });
});
