/**
 * The pieces behind disconnect and revoke that need no Redis: a node's copy
 * of the revocations, the control messages it accepts, and its index of
 * sessions by user.
 */

import { describe, expect, it } from "vitest";
import { isValidDisconnectReason, parseControlMessage } from "../../src/cluster/control-channel.js";
import { RevocationList } from "../../src/cluster/revocations.js";
import { SessionIndex } from "../../src/transport/session-index.js";

function clockAt(start: number): { now: () => number; advance: (ms: number) => void } {
  let now = start;
  return { now: () => now, advance: (ms) => (now += ms) };
}

describe("RevocationList", () => {
  it("refuses tokens issued before `before`, and tokens without iat, until the entry lapses", () => {
    const clock = clockAt(1_000_000);
    const list = new RevocationList(clock);
    list.add({ user: "alice", before: 900_000, until: 1_060_000 });
    expect(list.isRevoked("alice", 899_000)).toBe(true);
    expect(list.isRevoked("alice", 900_000)).toBe(false);
    expect(list.isRevoked("alice", null)).toBe(true);
    expect(list.isRevoked("bob", 0)).toBe(false);
    clock.advance(60_000);
    expect(list.isRevoked("alice", 0)).toBe(false);
    expect(list.size).toBe(0);
  });

  it("only ever widens an entry, and replace() takes Redis's list whole", () => {
    const clock = clockAt(0);
    const list = new RevocationList(clock);
    list.add({ user: "alice", before: 500, until: 10_000 });
    list.add({ user: "alice", before: 300, until: 20_000 });
    expect(list.isRevoked("alice", 400)).toBe(true);
    clock.advance(15_000);
    expect(list.isRevoked("alice", 400)).toBe(true);
    list.replace([{ user: "bob", before: 100, until: 30_000 }]);
    expect(list.isRevoked("alice", 0)).toBe(false);
    expect(list.isRevoked("bob", 0)).toBe(true);
    clock.advance(20_000);
    expect(list.sweep()).toBe(0);
  });
});

describe("control messages", () => {
  it("accepts disconnect and revoke, and nothing else", () => {
    expect(parseControlMessage('{"type":"disconnect","user":"alice"}')).toEqual({ type: "disconnect", user: "alice" });
    expect(parseControlMessage('{"type":"disconnect","user":"alice","reason":"bye"}')).toEqual({ type: "disconnect", user: "alice", reason: "bye" });
    expect(parseControlMessage('{"type":"revoke","user":"alice","before":1,"until":2}')).toEqual({ type: "revoke", user: "alice", before: 1, until: 2 });
    for (const text of ["", "nope", "[]", '{"type":"disconnect"}', '{"type":"disconnect","user":"a:b"}', '{"type":"revoke","user":"alice","before":"1","until":2}', '{"type":"other","user":"alice"}', '{"type":"disconnect","user":"alice","reason":"\\u0000"}']) {
      expect(parseControlMessage(text), text).toBeNull();
    }
  });

  it("keeps a disconnect reason within what a close frame holds", () => {
    expect(isValidDisconnectReason("banned: cheating")).toBe(true);
    expect(isValidDisconnectReason("é".repeat(50))).toBe(true);
    expect(isValidDisconnectReason("é".repeat(51))).toBe(false);
    expect(isValidDisconnectReason("")).toBe(false);
    expect(isValidDisconnectReason("tab\there")).toBe(false);
  });
});

describe("SessionIndex", () => {
  it("finds every session of a user and forgets closed ones", () => {
    const index = new SessionIndex();
    const a1 = { principal: { sub: "alice" } };
    const a2 = { principal: { sub: "alice" } };
    const b = { principal: { sub: "bob" } };
    for (const session of [a1, a2, b, a1]) index.add(session);
    expect(index.size).toBe(3);
    expect(index.sessionsOf("alice")).toEqual([a1, a2]);
    index.remove(a1);
    index.remove(a1);
    expect(index.sessionsOf("alice")).toEqual([a2]);
    index.remove(a2);
    index.remove(b);
    expect(index.sessionsOf("alice")).toEqual([]);
    expect(index.size).toBe(0);
  });
});
