/**
 * The player's bets: accepted by the slip's `place_bet` reply, then settled
 * by `bet_settled` on `user:<sub>` (from this page or any other device of
 * the same user). One row per bet id; settlement updates it in place and is
 * announced. The results screen asks for the bets of its round.
 */

import type { BetSettled, BetStatus, PlacedBetView } from "../shared/src/commands.js";
import { announce, byId, formatAmount, formatOdds, h, trimList } from "./dom.js";

export type RowStatus = "accepted" | BetStatus;

export interface BetRow {
  readonly betId: string;
  readonly roundId: number;
  readonly selection: number;
  readonly amount: number;
  readonly odds: number;
  readonly status: RowStatus;
  /** Minor units; null until settled. */
  readonly payout: number | null;
}

const MAX_ROWS = 20;

const ui = {
  bets: byId("bets"),
  empty: byId("bets-empty"),
};

const rows = new Map<string, BetRow>();
const listeners = new Set<(roundId: number) => void>();

/** Called with the round whenever one of its bets is added or settled. */
export function onBetsChanged(listener: (roundId: number) => void): void {
  listeners.add(listener);
}

export function betsOfRound(roundId: number): BetRow[] {
  return [...rows.values()].filter((row) => row.roundId === roundId);
}

export function describeOutcome(row: BetRow): string {
  switch (row.status) {
    case "accepted":
      return "waiting for the result";
    case "won":
      return `won ${formatAmount(row.payout ?? 0)}`;
    case "lost":
      return "lost";
    case "void":
      return `void, ${formatAmount(row.payout ?? row.amount)} returned`;
  }
}

function render(row: BetRow): void {
  ui.empty.hidden = true;
  let tr = ui.bets.querySelector<HTMLTableRowElement>(`tr[data-bet="${CSS.escape(row.betId)}"]`);
  if (tr === null) {
    tr = h("tr", { "data-bet": row.betId });
    ui.bets.prepend(tr);
    trimList(ui.bets, MAX_ROWS);
  }
  tr.dataset["status"] = row.status;
  const cells = [`#${row.roundId}`, String(row.selection), formatAmount(row.amount), formatOdds(row.odds), row.status, row.payout === null ? "–" : formatAmount(row.payout)];
  tr.replaceChildren(...cells.map((text) => h("td", {}, text)));
}

function store(row: BetRow): void {
  rows.set(row.betId, row);
  // Oldest first out, as the table shows only the newest.
  while (rows.size > MAX_ROWS) rows.delete(rows.keys().next().value as string);
  render(row);
  for (const listener of listeners) listener(row.roundId);
}

export function betAccepted(bet: PlacedBetView): void {
  const known = rows.get(bet.betId);
  // A late reply (a retried key) never undoes a settlement.
  if (known !== undefined && known.status !== "accepted") return;
  store({ betId: bet.betId, roundId: bet.roundId, selection: bet.selection, amount: bet.amount, odds: bet.odds, status: "accepted", payout: null });
}

export function betSettled(data: BetSettled): void {
  const row: BetRow = { betId: data.betId, roundId: data.roundId, selection: data.selection, amount: data.amount, odds: data.odds, status: data.status, payout: data.payout };
  store(row);
  announce(`Your bet of ${formatAmount(row.amount)} on runner ${row.selection} in round ${row.roundId}: ${describeOutcome(row)}.`);
}
