import { describe, expect, it } from "vitest";
import { channelNamespace, grantMatches, isValidChannelName, maySubscribe } from "../src/channels.js";

describe("channel rules", () => {
  it("validates names", () => {
    expect(isValidChannelName("user:auth0|123")).toBe(true);
    expect(isValidChannelName("forecasts:BTC-USD")).toBe(true);
    for (const bad of ["", "a b", "quote\"", "x".repeat(129), "new\nline", "star*"]) expect(isValidChannelName(bad)).toBe(false);
  });

  it("matches exact and prefix grants", () => {
    expect(grantMatches("odds:*", "odds:7")).toBe(true);
    expect(grantMatches("odds:*", "odd")).toBe(false);
    expect(grantMatches("vip", "vip")).toBe(true);
    expect(grantMatches("vip", "vip2")).toBe(false);
  });

  it("lets users into public channels and their own, and others only by grant", () => {
    const alice = { sub: "alice", channels: ["user:bob"] };
    expect(maySubscribe(alice, "race")).toBe(true);
    expect(maySubscribe(alice, "forecasts")).toBe(true);
    expect(maySubscribe(alice, "user:alice")).toBe(true);
    expect(maySubscribe(alice, "user:bob")).toBe(true);
    expect(maySubscribe(alice, "user:carol")).toBe(false);
    expect(maySubscribe(alice, "forecasts:BTC")).toBe(true);
    expect(maySubscribe(alice, "odds:1")).toBe(false);
  });

  it("labels metrics by namespace only", () => {
    expect(channelNamespace("user:alice")).toBe("user");
    expect(channelNamespace("race")).toBe("race");
  });
});
