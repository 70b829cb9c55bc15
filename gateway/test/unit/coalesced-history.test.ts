import { describe, expect, it } from "vitest";
import { CoalescedHistory } from "../../src/history/coalesced-history.js";
import type { History, HistorySlice } from "../../src/history/history.js";

/** A History that records each read and when it was issued, answering from `position`. */
function recordingHistory(): History & { reads: Array<{ channel: string; since: number; limit: number; at: number }>; position: number } {
  const reads: Array<{ channel: string; since: number; limit: number; at: number }> = [];
  let clock = 0;
  const history = {
    reads,
    position: 5,
    since(channel: string, since: number, limit: number): Promise<HistorySlice> {
      reads.push({ channel, since, limit, at: clock++ });
      return Promise.resolve({ position: { offset: history.position, epoch: "e1" }, messages: [] });
    },
  };
  return history;
}

describe("CoalescedHistory", () => {
  it("serves reads asked in the same turn with the same arguments from one read", async () => {
    const inner = recordingHistory();
    const history = new CoalescedHistory(inner);
    const slices = await Promise.all(Array.from({ length: 100 }, () => history.since("forecasts", 3, 1000)));
    expect(inner.reads).toHaveLength(1);
    expect(new Set(slices).size).toBe(1);
    expect(slices[0]?.position).toEqual({ offset: 5, epoch: "e1" });
  });

  it("keeps different channels, offsets and limits apart", async () => {
    const inner = recordingHistory();
    const history = new CoalescedHistory(inner);
    await Promise.all([history.since("a", 1, 10), history.since("a", 2, 10), history.since("a", 1, 0), history.since("b", 1, 10), history.since("a", 1, 10)]);
    expect(inner.reads.map((r) => `${r.channel}:${r.since}:${r.limit}`).sort()).toEqual(["a:1:0", "a:1:10", "a:2:10", "b:1:10"]);
  });

  it("issues the shared read only after every caller asked, and a later turn reads again", async () => {
    const inner = recordingHistory();
    const history = new CoalescedHistory(inner);
    const first = history.since("c", 0, 0);
    expect(inner.reads).toHaveLength(0);
    inner.position = 6;
    const second = history.since("c", 0, 0);
    expect((await first).position.offset).toBe(6);
    expect((await second).position.offset).toBe(6);
    inner.position = 7;
    expect((await history.since("c", 0, 0)).position.offset).toBe(7);
    expect(inner.reads).toHaveLength(2);
  });

  it("rejects every caller of a failed read", async () => {
    const failing: History = { since: () => Promise.reject(new Error("redis down")) };
    const history = new CoalescedHistory(failing);
    const results = await Promise.allSettled([history.since("d", 0, 1), history.since("d", 0, 1)]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
  });
});
