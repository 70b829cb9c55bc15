/**
 * The request parser on its own: the /ws envelope, what a request carries on
 * (only its schema's fields), and that a frame and the same request as a
 * Socket.IO event always come out the same, and that docs/protocol.schema.json
 * accepts exactly the frames the parser accepts.
 */

import { readFileSync } from "node:fs";
import { Compile } from "typebox/compile";
import { describe, expect, it } from "vitest";
import { protocolSchemaPath } from "../../../scripts/lib/protocol-schema.js";
import { RequestParser } from "../../src/transport/request-parser.js";

const parser = new RequestParser(4);

describe("the /ws envelope", () => {
  it("refuses frames without a usable id, unattributed", () => {
    for (const text of ["{not json", "[1]", "null", '{"type":"ping"}', '{"id":-1,"type":"ping"}', '{"id":1.5,"type":"ping"}', `{"id":${2 ** 53},"type":"ping"}`, '{"id":"1","type":"ping"}']) {
      const parsed = parser.parseFrame(text);
      expect(parsed, text).toMatchObject({ ok: false, id: null, error: { code: "bad_request" } });
    }
  });

  it("refuses a frame without a string type with its id", () => {
    expect(parser.parseFrame('{"id":7,"type":["ping"]}')).toEqual({ ok: false, id: 7, error: { code: "bad_request", message: "frame needs a string type" } });
  });

  it("accepts the largest safe id", () => {
    expect(parser.parseFrame(`{"id":${Number.MAX_SAFE_INTEGER},"type":"ping"}`)).toEqual({ ok: true, id: Number.MAX_SAFE_INTEGER, request: { type: "ping" } });
  });
});

describe("requests", () => {
  it("carries on only the fields its schema lists", () => {
    expect(parser.parse("subscribe", { channel: "race", since: { offset: 1, epoch: "e" }, id: 3, type: "x" })).toEqual({ ok: true, request: { type: "subscribe", channel: "race", since: { offset: 1, epoch: "e" } } });
    expect(parser.parse("subscribe", { channel: "race", extra: 1 })).toEqual({ ok: true, request: { type: "subscribe", channel: "race" } });
    expect(parser.parse("command", { name: "place_bet", data: null, user: "mallory" })).toEqual({ ok: true, request: { type: "command", name: "place_bet", data: null } });
  });

  it("refuses prototype keys at any depth", () => {
    for (const text of ['{"__proto__":{"x":1},"channel":"race"}', '{"channel":"race","x":{"constructor":1}}', '{"name":"n","data":[{"prototype":{}}]}']) {
      const parsed = parser.parse("command", JSON.parse(text));
      expect(parsed, text).toMatchObject({ ok: false, error: { code: "bad_request", message: expect.stringMatching(/^frame has the key "(__proto__|constructor|prototype)"/) } });
    }
  });

  it("lets command data nest maxJsonDepth levels, not one more", () => {
    expect(parser.parse("command", { name: "n", data: [[[[1]]]] })).toMatchObject({ ok: true });
    expect(parser.parse("command", { name: "n", data: [[[[[1]]]]] })).toEqual({ ok: false, error: { code: "bad_request", message: "frame nests deeper than 5 levels" } });
  });

  it("does not take a type from the object's prototype chain", () => {
    for (const type of ["toString", "__proto__", "constructor", "hasOwnProperty"]) {
      expect(parser.parse(type, {})).toMatchObject({ ok: false, error: { code: "unknown_type" } });
    }
  });

  it("refuses binary data, which Socket.IO attachments bring and JSON cannot hold, at any depth", () => {
    for (const payload of [Buffer.from("{}"), new Uint8Array(2), new ArrayBuffer(3)]) {
      expect(parser.parse("ping", payload)).toEqual({ ok: false, error: { code: "bad_request", message: "frame must be a JSON object" } });
    }
    expect(parser.parse("subscribe", { channel: "race", since: { offset: 1, epoch: "e", x: [Buffer.from("a")] } })).toEqual({
      ok: false,
      error: { code: "bad_request", message: "frame holds binary data, which no request accepts; send JSON" },
    });
    expect(parser.parse("command", { name: "n", data: { b: new Float64Array(1) } })).toMatchObject({ ok: false, error: { code: "bad_request" } });
  });

  it("refuses a payload that is not an object", () => {
    for (const payload of [null, "race", 1, ["race"]]) {
      expect(parser.parse("subscribe", payload)).toEqual({ ok: false, error: { code: "bad_request", message: "frame must be a JSON object" } });
    }
  });
});

describe("one result whichever transport carried the request", () => {
  const requests: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
    ["subscribe", { channel: "forecasts" }],
    ["subscribe", {}],
    ["subscribe", { channel: null }],
    ["unsubscribe", { channel: ["a"] }],
    ["refresh", { token: "" }],
    ["refresh", { token: "abc" }],
    ["ping", {}],
    ["command", { name: "x".repeat(65), data: 1 }],
    ["command", { name: "", data: 1 }],
    ["command", { name: 5, data: 1 }],
    ["command", { name: "place_bet" }],
    ["command", { name: "place_bet", data: { a: { b: { c: 1 } } } }],
    ["command", { name: "place_bet", data: { a: { b: { c: { d: 1 } } } } }],
    ["dance", {}],
  ];

  for (const [type, fields] of requests) {
    it(`${type} ${JSON.stringify(fields)}`, () => {
      const event = parser.parse(type, fields);
      const frame = parser.parseFrame(JSON.stringify({ type, id: 9, ...fields }));
      expect(frame).toEqual(event.ok ? { ok: true, id: 9, request: event.request } : { ok: false, id: 9, error: event.error });
    });
  }
});

describe("docs/protocol.schema.json", () => {
  const schema = Compile(JSON.parse(readFileSync(protocolSchemaPath(), "utf8")) as Record<string, unknown>);
  // Depth and prototype keys are the parser's own limits, outside the schema; nothing here hits them.
  const frames: readonly unknown[] = [
    { type: "subscribe", id: 1, channel: "race" },
    { type: "subscribe", id: 1, channel: "race", since: { offset: 1, epoch: "e" } },
    { type: "subscribe", id: 1 },
    { type: "subscribe", id: -1, channel: "race" },
    { type: "subscribe", id: 1.5, channel: "race" },
    { type: "unsubscribe", id: 0, channel: 1 },
    { type: "refresh", id: 2, token: "t" },
    { type: "refresh", id: 2, token: "" },
    { type: "ping", id: Number.MAX_SAFE_INTEGER },
    { type: "ping" },
    { type: "command", id: 3, name: "place_bet", data: { roundId: 1 } },
    { type: "command", id: 3, name: "place_bet", data: null },
    { type: "command", id: 3, name: "place_bet" },
    { type: "command", id: 3, name: "x".repeat(64), data: 1 },
    { type: "command", id: 3, name: "x".repeat(65), data: 1 },
    { type: "command", id: 3, name: "", data: 1 },
    { type: "dance", id: 4 },
    { id: 4 },
    [1],
    "ping",
  ];

  for (const frame of frames) {
    it(`agrees with the parser on ${JSON.stringify(frame).slice(0, 60)}`, () => {
      expect(schema.Check(frame)).toBe(parser.parseFrame(JSON.stringify(frame)).ok);
    });
  }
});
