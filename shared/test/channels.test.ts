import { describe, expect, it } from "vitest";
import { channelNamespace, grantMatches, grantProblem, isValidChannelName, isValidSub, maySubscribe, ROUND_AUTHORITY_CHANNELS } from "../src/channels.js";

describe("channel rules", () => {
  it("validates names", () => {
    expect(isValidChannelName("user:auth0|123")).toBe(true);
    expect(isValidChannelName("forecasts:BTC-USD")).toBe(true);
    for (const bad of ["", "a b", "quote\"", "x".repeat(129), "new\nline", "star*"]) expect(isValidChannelName(bad)).toBe(false);
  });

  it("validates subs: the channel set without `:`, at most 123 characters", () => {
    expect(isValidSub("auth0|123")).toBe(true);
    expect(isValidSub("a".repeat(123))).toBe(true);
    for (const bad of ["", "alice:orders", "a b", "a".repeat(124), "star*"]) expect(isValidSub(bad)).toBe(false);
  });

  it("matches exact grants and namespace wildcards", () => {
    expect(grantMatches("odds:*", "odds:7")).toBe(true);
    expect(grantMatches("odds:*", "odds:7:live")).toBe(true);
    expect(grantMatches("odds:*", "odds:")).toBe(false);
    expect(grantMatches("odds:*", "odd")).toBe(false);
    expect(grantMatches("vip", "vip")).toBe(true);
    expect(grantMatches("vip", "vip2")).toBe(false);
  });

  it("never lets a wildcard reach a personal channel or cross a namespace boundary", () => {
    for (const pattern of ["user:*", "user*", "u*", "*", "use*", "user:bob*"]) expect(grantMatches(pattern, "user:bob")).toBe(false);
    expect(grantMatches("vip*", "vipadmin")).toBe(false);
    expect(grantMatches("vip*", "vip:1")).toBe(false);
    expect(grantMatches("user:bob:*", "user:bob:orders")).toBe(false);
  });

  it("says which grants a token may carry", () => {
    for (const good of ["vip", "odds:*", "odds:live:*", "user:bob"]) expect(grantProblem(good)).toBeNull();
    for (const bad of ["*", "vip*", "u*", "user:*", "user:bob:*", ":*", "a b", "odds:*:*"]) expect(grantProblem(bad)).not.toBeNull();
  });

  it("lets users into public channels and their own, others' only by an exact grant", () => {
    const alice = { sub: "alice", channels: ["user:bob", "user:*", "u*", "user*"] };
    expect(maySubscribe(alice, "race")).toBe(true);
    expect(maySubscribe(alice, "forecasts")).toBe(true);
    expect(maySubscribe(alice, "user:alice")).toBe(true);
    expect(maySubscribe(alice, "user:bob")).toBe(true);
    expect(maySubscribe(alice, "user:carol")).toBe(false);
    expect(maySubscribe(alice, "forecasts:BTC")).toBe(true);
    expect(maySubscribe(alice, "odds:1")).toBe(false);
  });

  it("keeps the race channel to the round clock", () => {
    expect(ROUND_AUTHORITY_CHANNELS.has("race")).toBe(true);
  });

  it("labels metrics by namespace only", () => {
    expect(channelNamespace("user:alice")).toBe("user");
    expect(channelNamespace("race")).toBe("race");
  });
});
