import { describe, expect, it } from "vitest";
import { readSubprotocols } from "../../src/transport/ws-subprotocol.js";

describe("readSubprotocols", () => {
  it("answers gateway.v1 when offered and takes the bearer entry's token", () => {
    expect(readSubprotocols("gateway.v1, bearer.a.b.c")).toEqual({ ok: true, accept: "gateway.v1", token: "a.b.c" });
    expect(readSubprotocols("chat,gateway.v1")).toEqual({ ok: true, accept: "gateway.v1", token: undefined });
  });

  it("answers no protocol when gateway.v1 is not offered", () => {
    expect(readSubprotocols("")).toEqual({ ok: true, accept: "", token: undefined });
    expect(readSubprotocols("chat, superchat")).toEqual({ ok: true, accept: "", token: undefined });
  });

  it("refuses a bearer entry without gateway.v1, and two bearer entries", () => {
    expect(readSubprotocols("bearer.a.b.c")).toMatchObject({ ok: false });
    expect(readSubprotocols("gateway.v1, bearer.a, bearer.b")).toMatchObject({ ok: false });
  });

  it("reads an empty bearer entry as no token", () => {
    expect(readSubprotocols("gateway.v1, bearer.")).toEqual({ ok: true, accept: "gateway.v1", token: undefined });
  });
});
