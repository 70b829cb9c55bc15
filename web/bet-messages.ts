/**
 * What the bet slip tells a player when `place_bet` does not succeed, in
 * words, with what to do next. No DOM here, so a unit test can hold every
 * code the gateway or the SDK can answer a bet with to a sentence.
 *
 * `keepKey` says whether the slip keeps the bet's idempotency key for the
 * next confirm of the same bet. It does when the outcome is unknown (a
 * timeout, a dropped connection) or the gateway did not act on it: the retry
 * then places the bet at most once. After a refusal of the bet itself a new
 * key does no harm and avoids `conflict` once the player changes it.
 */

export interface BetFailureText {
  readonly text: string;
  readonly keepKey: boolean;
}

export interface BetContext {
  readonly roundId: number;
  readonly selection: number;
}

type Describe = (bet: BetContext, serverMessage: string) => BetFailureText;

const NOT_PLACED = "Nothing was placed";
const ONCE = "it will not be placed twice";

/** Keyed by the error code of the reply (shared/src/codes.ts) or the SDK's own codes (timeout, disconnected, closed). */
const FAILURES: Readonly<Record<string, Describe>> = {
  round_closed: (bet) => ({ text: `Bets on round ${bet.roundId} are closed: the race has started. ${NOT_PLACED}.`, keepKey: false }),
  odds_changed: (bet, message) => ({
    text: `The odds of runner ${bet.selection} changed (${message}). ${NOT_PLACED}: check the odds and confirm again.`,
    keepKey: false,
  }),
  conflict: () => ({ text: `This bet's key was already used for a different bet. ${NOT_PLACED}: confirm again to place it as a new bet.`, keepKey: false }),
  invalid_command: (_bet, message) => ({ text: `The bet was refused: ${message}. ${NOT_PLACED}.`, keepKey: false }),
  rate_limited: () => ({ text: `Too many requests from this page at once. ${NOT_PLACED}: wait a moment and confirm again.`, keepKey: true }),
  too_many_commands: () => ({ text: `Your earlier bets are still being processed. Wait for their answer, then confirm again; ${ONCE}.`, keepKey: true }),
  overloaded: () => ({ text: `The betting service is busy. ${NOT_PLACED}: confirm again in a moment; ${ONCE}.`, keepKey: true }),
  unavailable: () => ({ text: `Bets cannot be taken right now. ${NOT_PLACED}: try again shortly; ${ONCE}.`, keepKey: true }),
  forbidden: () => ({ text: `This account may not place bets. ${NOT_PLACED}.`, keepKey: false }),
  timeout: () => ({ text: `No answer in time: the bet may or may not have been placed. Confirm again to retry; ${ONCE}.`, keepKey: true }),
  disconnected: () => ({
    text: `The connection dropped after the bet was sent: it may have been placed. Confirm again once reconnected; ${ONCE}.`,
    keepKey: true,
  }),
  closed: () => ({ text: "This page is no longer connected: reload it to bet.", keepKey: false }),
};

/** The sentence for a failed `place_bet`; an unknown code still names itself and the gateway's message. */
export function describeBetFailure(code: string, serverMessage: string, bet: BetContext): BetFailureText {
  const describe = FAILURES[code];
  if (describe !== undefined) return describe(bet, serverMessage);
  return { text: `The bet was refused (${code}): ${serverMessage}`, keepKey: false };
}

/** The codes with a sentence of their own, for the test that checks every one the gateway sends has one. */
export const DESCRIBED_BET_FAILURES: readonly string[] = Object.keys(FAILURES);
