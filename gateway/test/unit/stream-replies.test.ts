/**
 * The ingest's reading of Redis stream replies, and of entries, without
 * Redis: the shapes Redis 7 answers with, and everything else refused. The
 * loop against a real Redis is gateway/test/ingest.test.ts.
 */

import { describe, expect, it } from "vitest";
import { isRejection, validateEntry } from "../../src/ingest/entry-validation.js";
import { compareIds, entryField, parseAutoclaimReply, parsePendingReply, parseReadReply } from "../../src/ingest/stream-replies.js";

describe("stream replies", () => {
  it("reads XREADGROUP: a timeout, an empty stream, entries, and entries trimmed while pending", () => {
    expect(parseReadReply(null)).toEqual([]);
    expect(parseReadReply([])).toEqual([]);
    expect(
      parseReadReply([
        [
          "gw:ingest",
          [
            ["1-0", ["channel", "race", "event", "e", "data", "1"]],
            ["2-0", null],
          ],
        ],
      ]),
    ).toEqual([
      { id: "1-0", fields: ["channel", "race", "event", "e", "data", "1"] },
      { id: "2-0", fields: null },
    ]);
  });

  it("reads entries as bytes, naming the fields whose first value is not UTF-8", () => {
    const bad = Buffer.from([0x22, 0xff, 0x22]);
    const entries = parseReadReply([
      [
        Buffer.from("gw:ingest"),
        [
          [Buffer.from("1-0"), [Buffer.from("channel"), Buffer.from("forecasts"), Buffer.from("data"), Buffer.from("1")]],
          [Buffer.from("2-0"), [Buffer.from("data"), bad, Buffer.from("data"), Buffer.from("2"), Buffer.from("event"), bad]],
          [Buffer.from("3-0"), [Buffer.from("data"), Buffer.from("3"), Buffer.from("data"), bad]],
        ],
      ],
    ]);
    expect(entries).toEqual([
      { id: "1-0", fields: ["channel", "forecasts", "data", "1"] },
      { id: "2-0", fields: ["data", '"\uFFFD"', "data", "2", "event", '"\uFFFD"'], notUtf8: ["data", "event"] },
      { id: "3-0", fields: ["data", "3", "data", '"\uFFFD"'] },
    ]);
    const rejected = validateEntry(entries[1]!, { maxDataBytes: 1000, maxDataDepth: 32 });
    expect(isRejection(rejected) && { reason: rejected.reason, message: rejected.message }).toEqual({ reason: "bad_json", message: "data is not valid UTF-8" });
  });

  it("refuses XREADGROUP replies of any other shape", () => {
    for (const reply of ["OK", 7, [["gw:ingest", "x"]], [["gw:ingest", [[1, []]]]], [["gw:ingest", [["1-0", [1, 2]]]]], ["not an array"]]) {
      expect(() => parseReadReply(reply)).toThrow(/unexpected/);
    }
  });

  it("reads XPENDING rows and refuses malformed ones", () => {
    expect(parsePendingReply([["1-0", "node-a", 1500, 2]])).toEqual([{ id: "1-0", consumer: "node-a", idleMs: 1500 }]);
    expect(parsePendingReply([])).toEqual([]);
    expect(() => parsePendingReply([["1-0", "node-a", "1500", 2]])).toThrow(/XPENDING row/);
    expect(() => parsePendingReply(null)).toThrow(/XPENDING reply/);
  });

  it("reads XAUTOCLAIM: cursor, claimed entries and ids deleted from the stream", () => {
    expect(parseAutoclaimReply(["0-0", [["1-0", ["a", "b"]]], ["0-5", "0-6"]])).toEqual({ cursor: "0-0", claimed: 1, deleted: 2 });
    expect(parseAutoclaimReply(["5-1", [], []])).toEqual({ cursor: "5-1", claimed: 0, deleted: 0 });
    expect(() => parseAutoclaimReply([5, [], []])).toThrow(/XAUTOCLAIM/);
    expect(() => parseAutoclaimReply(["0-0", "x", []])).toThrow(/stream entries/);
  });

  it("compares stream ids numerically, beyond 2^53 too", () => {
    expect(compareIds("9-0", "10-0")).toBe(-1);
    expect(compareIds("10-2", "10-10")).toBe(-1);
    expect(compareIds("10-10", "10-10")).toBe(0);
    expect(compareIds("18446744073709551615-1", "18446744073709551615-0")).toBe(1);
  });

  it("finds a field's first value in the flat pairs", () => {
    expect(entryField(["a", "1", "b", "2", "a", "3"], "a")).toBe("1");
    expect(entryField(["a", "1", "b"], "b")).toBeUndefined();
  });
});

describe("stream entries", () => {
  const limits = { maxDataBytes: 64, maxDataDepth: 3 };
  const entry = (fields: string[] | null) => ({ id: "1-0", fields });

  it("turns a valid entry into a publish request keyed by its stream id, so a takeover cannot publish it twice", () => {
    const valid = entry(["channel", "forecasts", "event", "forecast_update", "data", '{"p":0.5}']);
    expect(validateEntry(valid, limits)).toEqual({ channel: "forecasts", event: "forecast_update", data: { p: 0.5 }, idempotencyKey: `ingest:${valid.id}` });
  });

  it("rejects with a reason: trimmed, too large, bad JSON, too deep, invalid names, missing data", () => {
    const reasons = [
      entry(null),
      entry(["channel", "forecasts", "event", "e", "data", JSON.stringify("x".repeat(80))]),
      entry(["channel", "forecasts", "event", "e", "data", "{"]),
      entry(["channel", "forecasts", "event", "e", "data", "[[[[1]]]]"]),
      entry(["channel", "no spaces", "event", "e", "data", "1"]),
      entry(["channel", "forecasts", "event", "e"]),
    ].map((candidate) => {
      const outcome = validateEntry(candidate, limits);
      return isRejection(outcome) ? outcome.reason : "published";
    });
    expect(reasons).toEqual(["trimmed", "too_large", "bad_json", "invalid", "invalid", "invalid"]);
  });

  it("names the field at fault without the HTTP body's prefix", () => {
    const outcome = validateEntry(entry(["channel", "forecasts", "data", "1"]), limits);
    expect(isRejection(outcome) && outcome.message).toMatch(/^event must be/);
  });
});
