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

export interface OpenRound {
  readonly roundId: number;
  /** Decimal odds of runners 1..n (index 0 is runner 1). */
  readonly odds: readonly number[];
}

/** The current round and its odds, from the snapshot a race subscription returns while bets are open. */
export async function currentRound(client: TestClient): Promise<OpenRound> {
  const reply = await client.request({ type: "subscribe", channel: "race" });
  if (reply.ok && "snapshot" in reply && reply.snapshot !== undefined) {
    await client.request({ type: "unsubscribe", channel: "race" });
    const { snapshot } = reply;
    if (snapshot.event === "timer_update") return { roundId: snapshot.data.roundId, odds: snapshot.data.odds };
    throw new Error(`round ${snapshot.data.roundId} is not taking bets: ${JSON.stringify(snapshot)}`);
  }
  throw new Error(`no round yet: ${JSON.stringify(reply)}`);
}

/** The current round id, from the snapshot a race subscription returns. */
export async function currentRoundId(client: TestClient): Promise<number> {
  return (await currentRound(client)).roundId;
}

/** The odds of `selection` (1-based) in `round`. */
export function oddsOf(round: OpenRound, selection: number): number {
  const odds = round.odds[selection - 1];
  if (odds === undefined) throw new Error(`round ${round.roundId} has no runner ${selection}`);
  return odds;
}
