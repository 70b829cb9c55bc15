/**
 * `place_bet`: strict validation, then the batching writer. The user is the
 * token's subject, never a payload field. The round checks here are fast
 * refusals for the common cases (a future round, a selection or odds the
 * current round does not have); the store decides the betting window by the
 * database's clock inside the write transaction, which is what makes "bets
 * close when the race starts" hold under races and whatever this node's
 * clock says.
 */

import { ErrorCodes, type ErrorCode } from "../../../shared/src/codes.js";
import { isPlainObject } from "../../../shared/src/json.js";
import type { JsonValue } from "../../../shared/src/protocol.js";
import type { RoundState } from "../clock/round-schedule.js";
import type { BatchingWriter } from "../store/batching-writer.js";
import type { BetCommand, BetOutcome, BetRefusal } from "../store/bet-store.js";
import type { CommandContext, CommandHandler, CommandReply } from "./command-router.js";

export interface BetLimits {
  readonly minAmount: number;
  readonly maxAmount: number;
}

export interface PlaceBetDeps {
  readonly writer: Pick<BatchingWriter<BetCommand, BetOutcome>, "submit">;
  /** The round as stored now, or null when none exists yet. Rejects when unreadable. */
  readonly currentRound: () => Promise<RoundState | null>;
  /** False until the schema is migrated: bets are refused as unavailable. */
  readonly ready: () => boolean;
  readonly limits: BetLimits;
}

const KEY_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;
const FIELDS = new Set(["roundId", "selection", "amount", "odds", "idempotencyKey"]);
/** Decimal odds as the gateway publishes them: at least 1, at most two decimals. */
const MAX_ODDS = 10_000;

/** Waits before each retry of a bet whose open round Postgres has not recorded yet: about 1 s in all. */
const UNRECORDED_ROUND_RETRIES_MS = [25, 50, 100, 200, 400];

const REFUSAL_CODES: Readonly<Record<Exclude<BetRefusal, "round_unknown">, ErrorCode>> = {
  round_closed: ErrorCodes.roundClosed.code,
  odds_changed: ErrorCodes.oddsChanged.code,
  conflict: ErrorCodes.conflict.code,
  invalid_command: ErrorCodes.invalidCommand.code,
};

function invalid(message: string): CommandReply {
  return { ok: false, error: { code: ErrorCodes.invalidCommand.code, message } };
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

function isOdds(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 1 && value <= MAX_ODDS && Math.round(value * 100) / 100 === value;
}

export class PlaceBetHandler implements CommandHandler {
  constructor(private readonly deps: PlaceBetDeps) {}

  async handle(context: CommandContext, data: JsonValue): Promise<CommandReply> {
    if (!isPlainObject(data)) return invalid("data must be an object with roundId, selection, amount, odds and idempotencyKey");
    const unknown = Object.keys(data).filter((key) => !FIELDS.has(key));
    if (unknown.length > 0) return invalid(`unknown field${unknown.length > 1 ? "s" : ""}: ${unknown.slice(0, 5).join(", ")}`);
    const { roundId, selection, amount, odds, idempotencyKey } = data;
    if (!isPositiveInteger(roundId)) return invalid("roundId must be a positive integer");
    if (!isPositiveInteger(selection)) return invalid("selection must be a positive integer (a runner number)");
    if (!isPositiveInteger(amount)) return invalid("amount must be a positive integer in minor units");
    const { minAmount, maxAmount } = this.deps.limits;
    if (amount < minAmount || amount > maxAmount) return invalid(`amount must be between ${minAmount} and ${maxAmount}`);
    if (!isOdds(odds)) return invalid("odds must be the decimal odds shown for the selection (round_started or timer_update), e.g. 7.6");
    if (typeof idempotencyKey !== "string" || !KEY_PATTERN.test(idempotencyKey)) return invalid("idempotencyKey must be 8-64 characters of A-Z a-z 0-9 _ -");

    if (!this.deps.ready()) return { ok: false, error: { code: ErrorCodes.unavailable.code, message: "bets are not accepted yet (database not ready); retry" } };
    let round: RoundState | null;
    try {
      round = await this.deps.currentRound();
    } catch {
      return { ok: false, error: { code: ErrorCodes.unavailable.code, message: "round state unavailable; retry" } };
    }
    if (round === null || roundId > round.id) return { ok: false, error: { code: ErrorCodes.roundClosed.code, message: `round ${roundId} is not open for bets` } };
    if (round.id === roundId) {
      const current = round.odds[selection - 1];
      if (current === undefined) return invalid(`selection must be between 1 and ${round.runners}`);
      // Only while bets are open: a retry of an accepted bet after the close must reach the store for its original answer.
      if (round.phase === "waiting" && current !== odds) {
        return { ok: false, error: { code: ErrorCodes.oddsChanged.code, message: `the odds of runner ${selection} in round ${roundId} are ${current}, not ${odds}` } };
      }
    }

    const command: BetCommand = { userId: context.userId, roundId, selection, amount, odds, idempotencyKey };
    // The authority records a round in Postgres just after announcing it: a bet
    // on the round Redis says is open may arrive first, and is worth a retry.
    const current = round.id === roundId && round.phase === "waiting";
    for (let attempt = 0; ; attempt++) {
      const submitted = await this.deps.writer.submit(command);
      if (!submitted.ok) return { ok: false, error: { code: submitted.code, message: submitted.message } };
      const outcome = submitted.value;
      if (outcome.ok) return { ok: true, result: { bet: outcome.bet } };
      if (outcome.code !== "round_unknown") return { ok: false, error: { code: REFUSAL_CODES[outcome.code], message: outcome.message } };
      const wait = UNRECORDED_ROUND_RETRIES_MS[attempt];
      if (!current) return { ok: false, error: { code: ErrorCodes.roundClosed.code, message: `round ${roundId} is not open for bets` } };
      if (wait === undefined) return { ok: false, error: { code: ErrorCodes.unavailable.code, message: `round ${roundId} is not recorded yet; retry with the same idempotency key` } };
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
