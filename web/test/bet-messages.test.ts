/**
 * Every way place_bet can fail reads as a sentence on the bet slip, and only
 * outcomes that leave the bet unknown, or that the gateway did not act on,
 * keep the idempotency key for a retry.
 */

import { describe, expect, it } from "vitest";
import { ErrorCodes } from "../../shared/src/codes.js";
import { describeBetFailure, DESCRIBED_BET_FAILURES } from "../bet-messages.js";

const bet = { roundId: 41, selection: 3 };

/** What the gateway answers a command with (place-bet.ts, the command router, rate limits), and what the SDK adds. */
const GATEWAY_CODES = [
  ErrorCodes.roundClosed.code,
  ErrorCodes.oddsChanged.code,
  ErrorCodes.conflict.code,
  ErrorCodes.invalidCommand.code,
  ErrorCodes.overloaded.code,
  ErrorCodes.unavailable.code,
  ErrorCodes.rateLimited.code,
  ErrorCodes.tooManyCommands.code,
];
const SDK_CODES = ["timeout", "disconnected", "closed"];

describe("bet slip failure texts", () => {
  it("has a sentence of its own for every code a bet can fail with", () => {
    expect([...GATEWAY_CODES, ...SDK_CODES].filter((code) => !DESCRIBED_BET_FAILURES.includes(code))).toEqual([]);
    for (const code of [...GATEWAY_CODES, ...SDK_CODES]) {
      const { text } = describeBetFailure(code, "server says no", bet);
      expect(text, code).not.toContain(code);
      expect(text, code).toMatch(/^[A-Z].*\.$/);
    }
  });

  it("names the round and the runner where they matter, and passes on the gateway's reason", () => {
    expect(describeBetFailure("round_closed", "betting on round 41 is closed", bet).text).toBe("Bets on round 41 are closed: the race has started. Nothing was placed.");
    expect(describeBetFailure("odds_changed", "the odds of runner 3 in round 41 are 7.2, not 7.6", bet).text).toBe(
      "The odds of runner 3 changed (the odds of runner 3 in round 41 are 7.2, not 7.6). Nothing was placed: check the odds and confirm again.",
    );
    expect(describeBetFailure("invalid_command", "amount must be between 1 and 1000000", bet).text).toBe("The bet was refused: amount must be between 1 and 1000000. Nothing was placed.");
  });

  it("keeps the key only when a retry of the same bet must not place it twice", () => {
    const kept = [...GATEWAY_CODES, ...SDK_CODES].filter((code) => describeBetFailure(code, "", bet).keepKey).sort();
    expect(kept).toEqual(["disconnected", "overloaded", "rate_limited", "timeout", "too_many_commands", "unavailable"]);
  });

  it("still says something for a code it does not know", () => {
    expect(describeBetFailure("brand_new", "a reason", bet)).toEqual({ text: "The bet was refused (brand_new): a reason", keepKey: false });
  });
});
