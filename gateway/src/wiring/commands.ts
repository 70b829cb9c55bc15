/**
 * The client commands this node answers: `place_bet` while it has a
 * database. Bets need the migrated schema and the current round.
 */

import { CommandNames } from "../../../shared/src/commands.js";
import type { RoundView } from "../clock/round-view.js";
import { CommandRouter } from "../commands/command-router.js";
import { PlaceBetHandler } from "../commands/place-bet.js";
import type { GatewayConfig } from "../config.js";
import type { Database } from "./database.js";

/** Undefined without a database: the sessions then refuse commands as unavailable. */
export function wireCommands(config: GatewayConfig, database: Database | null, rounds: RoundView): CommandRouter | undefined {
  if (database === null) return undefined;
  const placeBet = new PlaceBetHandler({
    writer: database.writer,
    currentRound: () => rounds.current(),
    ready: () => database.isMigrated(),
    limits: { minAmount: config.writer.minBetAmount, maxAmount: config.writer.maxBetAmount },
  });
  return new CommandRouter(new Map([[CommandNames.placeBet, placeBet]]));
}
