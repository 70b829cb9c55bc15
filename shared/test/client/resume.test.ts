import { describe, expect, it } from "vitest";
import { ResumeTracker } from "../../src/client/resume.js";

describe("resume bookkeeping", () => {
  it("accepts the first delivery and consecutive offsets", () => {
    const tracker = new ResumeTracker();
    expect(tracker.observe("race", 10, "e1")).toEqual({ kind: "next" });
    expect(tracker.observe("race", 11, "e1")).toEqual({ kind: "next" });
    expect(tracker.position("race")).toEqual({ offset: 11, epoch: "e1" });
  });

  it("reports a gap with the number of missed offsets", () => {
    const tracker = new ResumeTracker();
    tracker.observe("race", 10, "e1");
    expect(tracker.observe("race", 14, "e1")).toEqual({
      kind: "notice",
      notice: { channel: "race", kind: "gap", previous: { offset: 10, epoch: "e1" }, current: { offset: 14, epoch: "e1" }, missed: 3 },
    });
    expect(tracker.position("race")).toEqual({ offset: 14, epoch: "e1" });
  });

  it("reports an epoch change whatever the offsets", () => {
    const tracker = new ResumeTracker();
    tracker.observe("race", 10, "e1");
    const seen = tracker.observe("race", 1, "e2");
    expect(seen.kind).toBe("notice");
    if (seen.kind === "notice") expect(seen.notice).toMatchObject({ kind: "epoch_changed", missed: null, current: { offset: 1, epoch: "e2" } });
  });

  it("flags repeats under the same epoch as duplicates and keeps the position", () => {
    const tracker = new ResumeTracker();
    tracker.observe("race", 10, "e1");
    expect(tracker.observe("race", 10, "e1")).toEqual({ kind: "duplicate" });
    expect(tracker.observe("race", 7, "e1")).toEqual({ kind: "duplicate" });
    expect(tracker.position("race")).toEqual({ offset: 10, epoch: "e1" });
  });

  it("keeps channels apart and forgets on request", () => {
    const tracker = new ResumeTracker();
    tracker.observe("race", 10, "e1");
    tracker.observe("user:alice", 3, "u1");
    expect(tracker.observe("user:alice", 4, "u1")).toEqual({ kind: "next" });
    tracker.forget("race");
    expect(tracker.position("race")).toBeUndefined();
    expect(tracker.observe("race", 99, "e1")).toEqual({ kind: "next" });
  });
});
