/**
 * The bet slip: pick a runner (a radio group: arrow keys choose), a stake,
 * confirm. It sends `place_bet` with the odds the player saw and says what
 * came back: the acknowledgement with the bet id, or the refusal in words
 * (bet-messages.ts). The slip stays focusable when bets close, so a keyboard
 * user never loses their place; confirming then says why nothing was sent.
 *
 * Idempotency: one key per bet the player means. It is kept for the next
 * confirm of the same bet after an outcome that left it unknown (timeout,
 * dropped connection) or that the gateway did not act on, so a retry places
 * it at most once; any change to the bet, or an answer, retires it.
 */

import type { PlaceBetData, PlaceBetResult } from "../shared/src/commands.js";
import { describeBetFailure } from "./bet-messages.js";
import { betAccepted } from "./bets-view.js";
import { byId, formatAmount, formatOdds, h } from "./dom.js";

export type PlaceBet = (data: PlaceBetData) => Promise<{ readonly result: PlaceBetResult }>;

type Outcome = "pending" | "accepted" | "refused" | "retry" | "hint";

const STAKE_PRESETS = [50, 100, 250, 500] as const;

const ui = {
  slip: byId("slip"),
  form: byId<HTMLFormElement>("slip-form"),
  round: byId("slip-round"),
  picks: byId("picks"),
  stake: byId<HTMLInputElement>("stake"),
  presets: byId("presets"),
  payout: byId("slip-payout"),
  confirm: byId<HTMLButtonElement>("confirm"),
  status: byId("bet-status"),
};

/** The round bets are open for; null while they are closed. */
let open: { roundId: number; odds: readonly number[] } | null = null;
/** The round the slip last offered, for the sentence when bets have closed. */
let lastRound: number | null = null;
let placeBet: PlaceBet | null = null;
let inFlight = false;
/** The key kept for a retry, and the bet it belongs to. */
let kept: { key: string; bet: string } | null = null;

/** 16 random bytes as hex; getRandomValues works outside secure contexts too, unlike randomUUID. */
function newIdempotencyKey(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** floor(amount × odds), as the gateway pays it; odds have two decimals, so this stays exact. */
export function payoutOf(amount: number, odds: number): number {
  return Math.floor((amount * Math.round(odds * 100)) / 100);
}

function say(outcome: Outcome, text: string): void {
  ui.status.dataset["outcome"] = outcome;
  ui.status.textContent = text;
}

function selectedRunner(): number | null {
  const checked = ui.picks.querySelector<HTMLInputElement>("input:checked");
  return checked === null ? null : Number(checked.value);
}

function stakeValue(): number | null {
  const value = Number(ui.stake.value);
  return Number.isSafeInteger(value) && value >= 1 ? value : null;
}

function updatePayout(): void {
  const runner = selectedRunner();
  const stake = stakeValue();
  const odds = runner === null || open === null ? undefined : open.odds[runner - 1];
  ui.payout.textContent = odds === undefined || stake === null ? "–" : formatAmount(payoutOf(stake, odds));
}

/** One radio per runner; rebuilt only when the number of runners changes, so focus and choice survive a new round. */
function showOdds(odds: readonly number[]): void {
  if (ui.picks.children.length !== odds.length) {
    const chosen = selectedRunner();
    ui.picks.replaceChildren(
      ...odds.map((_, i) => {
        const input = h("input", { type: "radio", name: "runner", value: String(i + 1) });
        if (chosen === i + 1) input.checked = true;
        return h("label", { class: "pick", "data-runner": String(i + 1) }, input, h("span", { class: "pick-runner" }, String(i + 1)), h("span", { class: "pick-odds" }, ""));
      }),
    );
  }
  odds.forEach((price, i) => {
    const label = ui.picks.children[i];
    if (!(label instanceof HTMLElement)) return;
    label.querySelector("input")?.setAttribute("aria-label", `Runner ${i + 1}, odds ${formatOdds(price)}`);
    const shown = label.querySelector(".pick-odds");
    if (shown !== null) shown.textContent = formatOdds(price);
  });
}

export function openBets(roundId: number, odds: readonly number[]): void {
  if (open?.roundId === roundId) return;
  open = { roundId, odds };
  lastRound = roundId;
  showOdds(odds);
  ui.slip.dataset["open"] = "true";
  ui.confirm.removeAttribute("aria-disabled");
  ui.confirm.textContent = "Place bet";
  ui.round.textContent = `Round ${roundId}: bets are open`;
  // An answer about an earlier round would read as if it were about this one.
  if (ui.status.dataset["outcome"] !== "pending") say("hint", "");
  kept = null;
  updatePayout();
}

export function closeBets(why: string): void {
  open = null;
  ui.slip.dataset["open"] = "false";
  ui.confirm.setAttribute("aria-disabled", "true");
  ui.confirm.textContent = "Bets closed";
  ui.round.textContent = why;
  updatePayout();
}

async function submit(): Promise<void> {
  if (open === null || placeBet === null) {
    say("refused", lastRound === null ? "Bets open when the next round starts." : `Bets on round ${lastRound} are closed: the race has started. Nothing was placed.`);
    return;
  }
  const selection = selectedRunner();
  if (selection === null) {
    say("hint", "Pick a runner first.");
    ui.picks.querySelector<HTMLInputElement>("input")?.focus();
    return;
  }
  const amount = stakeValue();
  if (amount === null) {
    say("hint", "Enter a stake: a whole number of at least 1.");
    ui.stake.focus();
    return;
  }
  if (inFlight) return;
  const { roundId } = open;
  const odds = open.odds[selection - 1];
  if (odds === undefined) return;

  const bet = `${roundId}/${selection}/${amount}/${odds}`;
  const idempotencyKey = kept !== null && kept.bet === bet ? kept.key : newIdempotencyKey();
  kept = null;
  inFlight = true;
  ui.form.setAttribute("aria-busy", "true");
  say("pending", `Placing ${formatAmount(amount)} on runner ${selection} at ${formatOdds(odds)}…`);
  try {
    const { result } = await placeBet({ roundId, selection, amount, odds, idempotencyKey });
    betAccepted(result.bet);
    const again = result.bet.duplicate ? " (it had been placed already: the retry found it)" : "";
    say(
      "accepted",
      `Bet #${result.bet.betId} accepted${again}: ${formatAmount(amount)} on runner ${selection} at ${formatOdds(odds)} in round ${roundId}. It pays ${formatAmount(payoutOf(amount, odds))} if runner ${selection} wins.`,
    );
    ui.confirm.textContent = open === null ? "Bets closed" : "Place bet";
  } catch (err) {
    const code = typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : "unknown";
    const failure = describeBetFailure(code, err instanceof Error ? err.message : String(err), { roundId, selection });
    if (failure.keepKey) kept = { key: idempotencyKey, bet };
    say(failure.keepKey ? "retry" : "refused", failure.text);
    ui.status.dataset["code"] = code;
    if (open !== null) ui.confirm.textContent = failure.keepKey ? "Retry bet" : "Place bet";
  } finally {
    inFlight = false;
    ui.form.removeAttribute("aria-busy");
  }
}

/** Once a client exists: confirming sends the bet through it. */
export function connectBetSlip(place: PlaceBet): void {
  placeBet = place;
}

/** Wires the form; bets stay closed until a round opens them, and unsent until connectBetSlip. */
export function mountBetSlip(): void {
  ui.presets.replaceChildren(
    ...STAKE_PRESETS.map((amount) => {
      const button = h("button", { type: "button", "data-stake": String(amount), "aria-label": `Stake ${amount}` }, formatAmount(amount));
      button.addEventListener("click", () => {
        ui.stake.value = String(amount);
        updatePayout();
      });
      return button;
    }),
  );
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    delete ui.status.dataset["code"];
    void submit();
  });
  ui.form.addEventListener("input", updatePayout);
  ui.form.addEventListener("change", updatePayout);
  closeBets("Bets open when the next round starts.");
}
