/** Helpers for tests that place bets through real sockets. */

import { randomBytes } from "node:crypto";
import type { PlaceBetData } from "../../../shared/src/commands.js";
import type { ReplyFrame } from "../../../shared/src/protocol.js";
import type { TestClient } from "./ws-client.js";

export function newKey(): string {
  return randomBytes(12).toString("base64url");
}

export function placeBet(client: TestClient, data: Partial<PlaceBetData> | Record<string, unknown>, timeoutMs = 15_000): Promise<ReplyFrame> {
  return client.request({ type: "command", name: "place_bet", data: data as never }, timeoutMs);
}

/** The bet id of an ok reply, or the error code. */
export function outcomeOf(reply: ReplyFrame): { ok: true; betId: string; duplicate: boolean } | { ok: false; code: string } {
  if (!reply.ok) return { ok: false, code: reply.error.code };
  if (!("result" in reply)) throw new Error(`reply without result: ${JSON.stringify(reply)}`);
  return { ok: true, betId: reply.result.bet.betId, duplicate: reply.result.bet.duplicate };
}

/** The current round id, from the snapshot a race subscription returns. */
export async function currentRoundId(client: TestClient): Promise<number> {
  const reply = await client.request({ type: "subscribe", channel: "race" });
  if (reply.ok && "snapshot" in reply && reply.snapshot !== undefined) {
    await client.request({ type: "unsubscribe", channel: "race" });
    return reply.snapshot.data.roundId;
  }
  throw new Error(`no round yet: ${JSON.stringify(reply)}`);
}
