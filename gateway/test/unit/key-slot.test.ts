/**
 * The slot function against values Redis itself gives (CLUSTER KEYSLOT, and
 * the examples of the Redis Cluster specification).
 */

import { describe, expect, it } from "vitest";
import { hashedPart, keySlot } from "../../src/redis/key-slot.js";
import { RedisKeyspace } from "../../src/broker/redis-keys.js";

describe("keySlot", () => {
  it("matches Redis' CRC16 slots", () => {
    expect(keySlot("123456789")).toBe(0x31c3 % 16_384);
    expect(keySlot("foo")).toBe(12_182);
    expect(keySlot("bar")).toBe(5061);
    expect(keySlot("user:1000")).toBe(1649);
  });

  it("hashes only the hash tag, when it is not empty", () => {
    expect(hashedPart("{user1000}.following")).toBe("user1000");
    expect(hashedPart("foo{}{bar}")).toBe("foo{}{bar}");
    expect(hashedPart("foo{{bar}}zap")).toBe("{bar");
    expect(hashedPart("foo{bar}{zap}")).toBe("bar");
    expect(hashedPart("no tag}")).toBe("no tag}");
    expect(keySlot("{user1000}.following")).toBe(keySlot("{user1000}.followers"));
  });

  it("puts every Redis name of a channel, and the round clock's keys with race, in one slot", () => {
    const keyspace = new RedisKeyspace("gw", 64, "cluster");
    for (const channel of ["race", "forecasts:BTC", "user:alice"]) {
      const slot = keySlot(keyspace.stateKey(channel));
      expect([keyspace.historyKey(channel), keyspace.idempotencyKey(channel, "k-1"), keyspace.busChannel(channel)].map(keySlot)).toEqual([slot, slot, slot]);
    }
    const race = keySlot(keyspace.stateKey("race"));
    expect((["lease", "fence", "round"] as const).map((kind) => keySlot(keyspace.clockKey(kind)))).toEqual([race, race, race]);
    // One server keeps the names earlier versions used.
    expect(new RedisKeyspace("gw").clockKey("lease")).toBe("gw:clock:lease");
  });
});
