/**
 * The race section: the countdown while bets are open, the track while the
 * race runs, the results after it, and the list of recent rounds with their
 * verification. Screens switch on the lifecycle events (round_started,
 * race_started, round_finished); the periodic ticks (timer_update,
 * race_sync) keep a late or resynced page in step, and between ticks the
 * animation frame interpolates from the last one on the local clock.
 */

import type { ChannelHandlers, RaceStarted, RaceSync, RoundFinished, RoundStarted, Screen, TimerUpdate } from "../shared/src/client/index.js";
import { verifyRound } from "../shared/src/client/verify-round.js";
import type { RoundVoided } from "../shared/src/race-events.js";
import { betsOfRound, describeOutcome } from "./bets-view.js";
import { log } from "./connection-view.js";
import { announce, byId, formatAmount, h, prefersReducedMotion, trimList } from "./dom.js";
import { finishPositions, neutralPosition, raceProgress } from "./race-motion.js";

export interface BetWindow {
  /** Bets are open for `roundId` at these odds (index 0 is runner 1). */
  readonly open: (roundId: number, odds: readonly number[]) => void;
  /** Bets are closed; `why` is the sentence the slip shows. */
  readonly close: (why: string) => void;
}

const ui = {
  race: byId("race"),
  roundId: byId("round-id"),
  phase: byId("phase"),
  note: byId("round-note"),
  countdownLeft: byId("countdown-left"),
  countdownBar: byId("countdown-bar"),
  track: byId("track"),
  raceBar: byId("race-bar"),
  raceTime: byId("race-time"),
  winner: byId("winner"),
  ranking: byId("ranking"),
  myResult: byId("my-result"),
  verified: byId("verified"),
  nextRound: byId("next-round"),
  rounds: byId("rounds"),
};

const PHASES: Readonly<Record<Screen | "none", string>> = {
  none: "waiting for the first round",
  game_screen: "bets open",
  movie_screen: "race on",
  finish_screen: "results",
};

const view = {
  screen: "none" as Screen | "none",
  roundId: null as number | null,
  runners: 0,
  /** The race's length; null until a round_started or race_started told it (a page that joined mid-race). */
  raceMs: null as number | null,
  countdown: null as { timeLeft: number; total: number; at: number } | null,
  /** The last race_sync (or race_started), and a count of them for the reduced-motion path. */
  race: null as { timeInRace: number; at: number; seq: number } | null,
  drawnSeq: -1,
  nextRoundAt: null as { inMs: number; at: number } | null,
  odds: [] as readonly number[],
  ranking: null as readonly number[] | null,
  /** race_started's commitment per round: what the revealed seed is checked against. */
  commitments: new Map<number, string>(),
};

let betWindow: BetWindow = { open: () => undefined, close: () => undefined };

const ordinal = (n: number): string => `${n}${n % 10 === 1 && n % 100 !== 11 ? "st" : n % 10 === 2 && n % 100 !== 12 ? "nd" : n % 10 === 3 && n % 100 !== 13 ? "rd" : "th"}`;

function buildTrack(runners: number): void {
  if (view.runners === runners && ui.track.children.length === runners) return;
  view.runners = runners;
  ui.track.replaceChildren(
    ...Array.from({ length: runners }, (_, i) =>
      h("div", { class: "lane", "data-runner": String(i + 1) }, h("span", { class: "lane-no" }, String(i + 1)), h("span", { class: "runner" }, String(i + 1)), h("span", { class: "place" }, "")),
    ),
  );
}

function placeRunners(position: (runner: number) => number): void {
  for (const lane of ui.track.children) {
    if (!(lane instanceof HTMLElement)) continue;
    const runner = Number(lane.dataset["runner"]);
    lane.querySelector<HTMLElement>(".runner")?.style.setProperty("--pos", position(runner).toFixed(4));
  }
}

function showPlaces(ranking: readonly number[] | null): void {
  for (const lane of ui.track.children) {
    if (!(lane instanceof HTMLElement)) continue;
    const place = ranking === null ? -1 : ranking.indexOf(Number(lane.dataset["runner"]));
    lane.dataset["place"] = place < 0 ? "" : String(place + 1);
    const label = lane.querySelector(".place");
    if (label !== null) label.textContent = place < 0 ? "" : ordinal(place + 1);
  }
}

function setScreen(screen: Screen, roundId: number): void {
  if (view.roundId !== roundId) {
    // A new round, or one a resync jumped to: nothing of the last one's results applies.
    view.roundId = roundId;
    view.nextRoundAt = null;
    view.ranking = null;
    ui.roundId.textContent = String(roundId);
    ui.winner.textContent = "?";
    ui.ranking.replaceChildren();
    ui.note.textContent = "";
    ui.verified.dataset["state"] = "pending";
    ui.verified.textContent = "waiting for the result";
    showPlaces(null);
    placeRunners(() => 0);
    showMyResult();
  }
  if (view.screen === screen) return;
  view.screen = screen;
  ui.race.dataset["screen"] = screen;
  ui.phase.textContent = PHASES[screen];
  if (view.runners === 0) buildTrack(Math.max(view.odds.length, 8));
  switch (screen) {
    case "game_screen":
      betWindow.open(roundId, view.odds);
      announce(`Round ${roundId}: bets are open.`);
      break;
    case "movie_screen":
      betWindow.close(`Round ${roundId}: bets are closed, the race is on.`);
      announce(`Round ${roundId}: the race is on. Bets are closed.`);
      break;
    case "finish_screen":
      betWindow.close(`Round ${roundId} is over. Bets open when round ${roundId + 1} starts.`);
      // A resync that lands here missed round_finished: no result will come for this round.
      if (view.ranking === null) ui.note.textContent = "The result of this round was announced while the page was away.";
      break;
  }
}

/** The player's bets on the round the results screen shows; called again when one of them changes. */
export function showMyResult(): void {
  const roundId = view.roundId;
  const mine = roundId === null ? [] : betsOfRound(roundId);
  ui.myResult.replaceChildren(
    ...(mine.length === 0
      ? [h("li", { class: "muted" }, "No bet of yours on this round.")]
      : mine.map((bet) => h("li", { "data-status": bet.status }, `${formatAmount(bet.amount)} on runner ${bet.selection}: ${describeOutcome(bet)}`))),
  );
  const chosen = new Set(mine.map((bet) => bet.selection));
  for (const item of ui.ranking.children) {
    if (item instanceof HTMLElement) item.classList.toggle("mine", chosen.has(Number(item.dataset["runner"])));
  }
}

function roundStarted(data: RoundStarted): void {
  view.odds = data.odds;
  view.raceMs = data.durations.raceMs;
  buildTrack(data.runners);
  setScreen("game_screen", data.roundId);
  log(`round ${data.roundId} started`);
}

function timerUpdate(data: TimerUpdate): void {
  // A page that joined mid-round learns the odds from the first tick.
  view.odds = data.odds;
  if (view.runners !== data.odds.length) buildTrack(data.odds.length);
  setScreen("game_screen", data.roundId);
  betWindow.open(data.roundId, data.odds);
  view.countdown = { timeLeft: data.timer.timeLeft, total: data.timer.totalDuration, at: performance.now() };
}

function raceStarted(data: RaceStarted): void {
  view.raceMs = data.raceDuration;
  view.race = { timeInRace: 0, at: performance.now(), seq: (view.race?.seq ?? 0) + 1 };
  view.commitments.set(data.roundId, data.commitment);
  // Only the last few rounds' commitments matter; a long-open page keeps no more.
  for (const round of view.commitments.keys()) if (round < data.roundId - 5) view.commitments.delete(round);
  setScreen("movie_screen", data.roundId);
}

function raceSync(data: RaceSync): void {
  setScreen(data.currentScreen, data.roundId);
  view.race = { timeInRace: data.timeInRace, at: performance.now(), seq: (view.race?.seq ?? 0) + 1 };
}

function roundFinished(data: RoundFinished): void {
  setScreen("finish_screen", data.roundId);
  // After setScreen, which clears the ranking of any round it is not showing yet.
  view.ranking = data.result.ranking;
  ui.note.textContent = "";
  ui.winner.textContent = String(data.result.winner);
  ui.ranking.replaceChildren(
    ...data.result.ranking.map((runner, place) => h("li", { "data-runner": String(runner) }, h("span", { class: "place" }, ordinal(place + 1)), ` runner ${runner}`)),
  );
  buildTrack(data.result.ranking.length);
  showPlaces(data.result.ranking);
  const positions = finishPositions(data.result.ranking);
  placeRunners((runner) => positions.get(runner) ?? 0);
  showMyResult();
  view.nextRoundAt = { inMs: data.nextRoundAt - data.serverTime, at: performance.now() };
  announce(`Round ${data.roundId}: runner ${data.result.winner} won.`);
  log(`round ${data.roundId}: runner ${data.result.winner} won`);
  verify(data);
}

function roundVoided(data: RoundVoided): void {
  ui.rounds.prepend(h("li", { "data-round": String(data.roundId) }, `Round ${data.roundId}: voided (${data.reason}), stakes returned`));
  trimList(ui.rounds, 10);
  if (view.roundId === data.roundId) ui.note.textContent = `Round ${data.roundId} was voided (${data.reason}): every stake is returned.`;
  announce(`Round ${data.roundId} was voided; stakes are returned.`);
  log(`round ${data.roundId} voided: ${data.reason}`);
}

/** Adds the round to "Rounds", then checks its seed against race_started's commitment and marks it. */
function verify(data: RoundFinished): void {
  const mark = h("span", { class: "mark", "data-state": "pending" }, "checking…");
  ui.rounds.prepend(h("li", { "data-round": String(data.roundId) }, `Round ${data.roundId}: runner ${data.result.winner} won · `, mark));
  trimList(ui.rounds, 10);
  ui.verified.dataset["state"] = "pending";
  ui.verified.textContent = "checking…";

  // Joined after the race started: only round_finished's own copy of the commitment is known.
  const committed = view.commitments.get(data.roundId);
  view.commitments.delete(data.roundId);
  const targets = (): HTMLElement[] => [mark, ...(view.roundId === data.roundId ? [ui.verified] : [])];
  if (globalThis.crypto?.subtle === undefined) {
    // Web Crypto exists only in secure contexts (HTTPS, or localhost).
    for (const target of targets()) target.textContent = "cannot verify here (needs HTTPS)";
    return;
  }
  void verifyRound({ commitment: committed ?? data.commitment, seed: data.seed, ranking: data.result.ranking }).then(
    (outcome) => {
      const state = outcome.verified ? "verified" : "failed";
      const text = outcome.verified ? `verified${committed === undefined ? " (commitment from round_finished)" : ""}` : `NOT verified: ${outcome.reason}`;
      for (const target of targets()) {
        target.dataset["state"] = state;
        target.textContent = text;
      }
    },
    (err: unknown) => log(`verifying round ${data.roundId} failed: ${String(err)}`),
  );
}

/** Called on every animation frame: moves what moves between ticks. */
export function drawRace(now: number): void {
  if (view.screen === "game_screen" && view.countdown !== null) {
    const left = Math.max(0, view.countdown.timeLeft - (now - view.countdown.at));
    ui.countdownLeft.textContent = `${(left / 1000).toFixed(1)} s`;
    ui.countdownBar.style.width = `${view.countdown.total > 0 ? (left / view.countdown.total) * 100 : 0}%`;
  }
  if (view.screen === "movie_screen" && view.race !== null) {
    const inRace = view.race.timeInRace + (now - view.race.at);
    ui.raceTime.textContent = `${(inRace / 1000).toFixed(1)} s${view.raceMs === null ? "" : ` of ${(view.raceMs / 1000).toFixed(1)} s`}`;
    const progress = raceProgress(inRace, view.raceMs);
    ui.raceBar.style.width = `${progress * 100}%`;
    // With reduced motion the runners step once per race_sync instead of gliding.
    if (!prefersReducedMotion()) placeRunners((runner) => neutralPosition(runner, progress));
    else if (view.drawnSeq !== view.race.seq) {
      view.drawnSeq = view.race.seq;
      const synced = raceProgress(view.race.timeInRace, view.raceMs);
      placeRunners((runner) => neutralPosition(runner, synced));
    }
  }
  if (view.screen === "finish_screen" && view.nextRoundAt !== null) {
    ui.nextRound.textContent = `${(Math.max(0, view.nextRoundAt.inMs - (now - view.nextRoundAt.at)) / 1000).toFixed(1)} s`;
  }
}

/** The race channel's handlers, wired to the bet window (the slip). */
export function raceHandlers(bets: BetWindow): ChannelHandlers {
  betWindow = bets;
  return {
    round_started: roundStarted,
    timer_update: timerUpdate,
    race_started: raceStarted,
    race_sync: raceSync,
    round_finished: roundFinished,
    round_voided: roundVoided,
  };
}
