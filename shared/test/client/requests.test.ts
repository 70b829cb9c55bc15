import { describe, expect, it } from "vitest";
import { closedAfterEach, type Harness } from "./harness.js";

const start = closedAfterEach();
const started = (): Promise<Harness> => start({ requestTimeoutMs: 2000 });

const bet = { roundId: 4, selection: 2, amount: 100, odds: 7.6, idempotencyKey: "key-12345678" };

describe("commands and requests", () => {
  it("sends a command as a frame with a fresh id and resolves with the ok reply", async () => {
    const h = await started();
    h.server.last().accept();
    const pending = h.client.command("place_bet", bet);
    expect(h.server.last().sentOfType("command")).toEqual([{ type: "command", name: "place_bet", data: bet, id: 1 }]);
    const result = { bet: { betId: "b1", roundId: 4, selection: 2, amount: 100, odds: 7.6, placedAt: 5, duplicate: false } };
    h.server.last().replyOk("command", { result });
    await expect(pending).resolves.toMatchObject({ ok: true, result });
  });

  it("rejects with the server's error code", async () => {
    const h = await started();
    h.server.last().accept();
    const pending = h.client.command("place_bet", bet);
    h.server.last().receive({ type: "reply", id: 1, ok: false, error: { code: "round_closed", message: "bets are closed" } });
    await expect(pending).rejects.toMatchObject({ name: "GatewayError", code: "round_closed" });
  });

  it("holds a request made while connecting until the welcome", async () => {
    const h = await started();
    const pending = h.client.request({ type: "ping" });
    h.server.last().readyState = 1;
    expect(h.server.last().sent).toEqual([]);
    h.server.last().accept();
    h.server.last().replyOk("ping", { serverTime: 5 });
    await expect(pending).resolves.toMatchObject({ serverTime: 5 });
  });

  it("fails a sent request with `disconnected` when the socket drops, never resends it", async () => {
    const h = await started();
    h.server.last().accept();
    const pending = h.client.command("place_bet", bet);
    h.server.last().drop();
    await expect(pending).rejects.toMatchObject({ code: "disconnected" });
    await h.timers.advance(h.timers.nextDelay() ?? 0);
    h.server.last().accept();
    expect(h.server.last().sentOfType("command")).toEqual([]);
  });

  it("times out", async () => {
    const h = await started();
    h.server.last().accept();
    const pending = h.client.command("place_bet", bet);
    const outcome = expect(pending).rejects.toMatchObject({ code: "timeout" });
    await h.timers.advance(2000);
    await outcome;
  });

  it("ignores a late reply to a timed-out request", async () => {
    const h = await started();
    h.server.last().accept();
    const pending = h.client.command("place_bet", bet).catch((error: unknown) => error);
    await h.timers.advance(2000);
    h.server.last().replyOk("command", { result: {} });
    expect(await pending).toMatchObject({ code: "timeout" });
    expect(h.of("error")).toEqual([]);
  });

  it("fails everything pending with `closed` on close()", async () => {
    const h = await started();
    h.server.last().accept();
    const pending = h.client.command("place_bet", bet);
    await h.client.close();
    await expect(pending).rejects.toMatchObject({ code: "closed" });
    await expect(h.client.command("place_bet", bet)).rejects.toMatchObject({ code: "closed" });
  });
});
