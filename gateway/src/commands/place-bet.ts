/**
 * `place_bet`: strict validation, then the batching writer. The user is the
 * token's subject, never a payload field. The round check here is a fast
 * refusal for the common case; the store re-checks the betting window inside
 * the write transaction, which is what makes "bets close when the race
 * starts" hold under races.
 */

import { ErrorCodes } from "../../../shared/src/codes.js";
import { isPlainObject } from "../../../shared/src/json.js";
import type { JsonValue } from "../../../shared/src/protocol.js";
import type { RoundState } from "../clock/round-schedule.js";
import type { Clock } from "../time/clock.js";
import type { BatchingWriter } from "../store/batching-writer.js";
import type { BetCommand, BetOutcome } from "../store/bet-store.js";
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
  readonly clock?: Clock;
}

const KEY_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;
const FIELDS = new Set(["roundId", "selection", "amount", "idempotencyKey"]);

function invalid(message: string): CommandReply {
  return { ok: false, error: { code: ErrorCodes.invalidCommand.code, message } };
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

export class PlaceBetHandler implements CommandHandler {
  private readonly clock: Clock;

  constructor(private readonly deps: PlaceBetDeps) {
    this.clock = deps.clock ?? Date;
  }

  async handle(context: CommandContext, data: JsonValue): Promise<CommandReply> {
    if (!isPlainObject(data)) return invalid("data must be an object with roundId, selection, amount and idempotencyKey");
    const unknown = Object.keys(data).filter((key) => !FIELDS.has(key));
    if (unknown.length > 0) return invalid(`unknown field${unknown.length > 1 ? "s" : ""}: ${unknown.slice(0, 5).join(", ")}`);
    const { roundId, selection, amount, idempotencyKey } = data;
    if (!isPositiveInteger(roundId)) return invalid("roundId must be a positive integer");
    if (!isPositiveInteger(selection)) return invalid("selection must be a positive integer (a runner number)");
    if (!isPositiveInteger(amount)) return invalid("amount must be a positive integer in minor units");
    const { minAmount, maxAmount } = this.deps.limits;
    if (amount < minAmount || amount > maxAmount) return invalid(`amount must be between ${minAmount} and ${maxAmount}`);
    if (typeof idempotencyKey !== "string" || !KEY_PATTERN.test(idempotencyKey)) return invalid("idempotencyKey must be 8-64 characters of A-Z a-z 0-9 _ -");

    if (!this.deps.ready()) return { ok: false, error: { code: ErrorCodes.unavailable.code, message: "bets are not accepted yet (database not ready); retry" } };
    let round: RoundState | null;
    try {
      round = await this.deps.currentRound();
    } catch {
      return { ok: false, error: { code: ErrorCodes.unavailable.code, message: "round state unavailable; retry" } };
    }
    const placedAt = this.clock.now();
    // A retry of an accepted bet must still get its original answer after the
    // round closed, so a closed round only refuses here when it cannot be a
    // retry: the store answers known keys before it checks the window.
    const open = round !== null && round.id === roundId && round.phase === "waiting" && placedAt < round.raceStartAt;
    if (round !== null && round.id === roundId && selection > round.runners) return invalid(`selection must be between 1 and ${round.runners}`);
    if (!open && (round === null || roundId > round.id)) {
      return { ok: false, error: { code: ErrorCodes.roundClosed.code, message: `round ${roundId} is not open for bets` } };
    }

    const submitted = await this.deps.writer.submit({ userId: context.userId, roundId, selection, amount, idempotencyKey, placedAt });
    if (!submitted.ok) return { ok: false, error: { code: submitted.code, message: submitted.message } };
    const outcome = submitted.value;
    if (!outcome.ok) return { ok: false, error: { code: ErrorCodes.roundClosed.code, message: outcome.message } };
    return { ok: true, result: { bet: outcome.bet } };
  }
}
