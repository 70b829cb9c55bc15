import { describe, expect, it } from "vitest";
import { closedAfterEach, type Harness } from "./harness.js";

const start = closedAfterEach();

async function withTokens(): Promise<Harness & { calls: () => number }> {
  let calls = 0;
  const h = await start({ refreshLeadMs: 30_000, refreshRetryMs: 5000 }, { getToken: () => Promise.resolve(`token-${++calls}`) });
  return Object.assign(h, { calls: () => calls });
}

describe("token refresh", () => {
  it("refreshes 10 % of a short lifetime before expiry, on the same socket", async () => {
    const h = await withTokens();
    h.server.last().accept({ expiresAt: h.timers.now() + 60_000 });
    await h.timers.advance(53_999);
    expect(h.server.last().sentOfType("refresh")).toEqual([]);
    await h.timers.advance(1);
    expect(h.server.last().sentOfType("refresh")).toEqual([{ type: "refresh", token: "token-2", id: 1 }]);
    h.server.last().replyOk("refresh", { expiresAt: h.timers.now() + 3_600_000, unsubscribed: [] });
    await h.timers.advance(0);
    expect(h.of("refreshed")).toHaveLength(1);
    // The next refresh is due 30 s before the new expiry.
    expect(h.timers.nextDelay()).toBe(3_570_000);
    expect(h.server.sockets).toHaveLength(1);
    expect(h.of("disconnected")).toEqual([]);
  });

  it("measures the lifetime on the server's clock, not the local one", async () => {
    const h = await withTokens();
    // The server's clock is 10 minutes ahead of ours.
    const serverTime = h.timers.now() + 600_000;
    h.server.last().accept({ serverTime, expiresAt: serverTime + 3_600_000 });
    expect(h.timers.nextDelay()).toBe(3_570_000);
  });

  it("retries a failed refresh while the token is still valid", async () => {
    const h = await withTokens();
    h.server.last().accept({ expiresAt: h.timers.now() + 100_000 });
    await h.timers.advance(h.timers.nextDelay() ?? 0);
    const first = h.server.last().sentOfType("refresh")[0]!;
    h.server.last().receive({ type: "reply", id: first["id"], ok: false, error: { code: "invalid_token", message: "bad" } });
    await h.timers.advance(0);
    expect(h.of("error").map((e) => e.code)).toEqual(["invalid_token"]);
    expect(h.timers.nextDelay()).toBe(5000);
    await h.timers.advance(5000);
    expect(h.server.last().sentOfType("refresh")).toHaveLength(2);
  });

  it("drops channels the refreshed token no longer grants", async () => {
    const h = await withTokens();
    const errors: string[] = [];
    h.client.subscribe("vip", { error: (e) => errors.push(e.code) });
    h.server.last().accept({ expiresAt: h.timers.now() + 60_000 });
    h.server.last().replyOk("subscribe", { channel: "vip" });
    await h.timers.advance(54_000);
    h.server.last().replyOk("refresh", { expiresAt: h.timers.now() + 60_000, unsubscribed: ["vip"] });
    await h.timers.advance(0);
    expect(errors).toEqual(["forbidden"]);
  });

  it("schedules nothing for a fixed token or a token without expiry", async () => {
    const fixed = await start();
    fixed.server.last().accept({ expiresAt: fixed.timers.now() + 60_000 });
    expect(fixed.timers.nextDelay()).toBeNull();
    const endless = await withTokens();
    endless.server.last().accept({ expiresAt: null });
    expect(endless.timers.nextDelay()).toBeNull();
  });
});
