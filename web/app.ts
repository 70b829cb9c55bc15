/**
 * The live race screen served at `/`. Everything it shows comes through the
 * SDK: the `race` channel drives the screens and the odds, `user:<sub>` the
 * portfolio and the settlement of this user's bets, the client's state events
 * the badge. After a reconnect the badge says whether every channel was
 * resumed (nothing lost) or resynced (the race screen redrawn from the
 * snapshot). The build maps these imports to the served `/sdk.js` and
 * `/verify-round.js`, so the page runs the same bundles third parties load.
 */

import {
  connect,
  type ClientEvents,
  type GatewayClient,
  type PortfolioUpdate,
  type RaceSync,
  type ResumedInfo,
  type RoundFinished,
  type Screen,
  type TimerUpdate,
} from "../shared/src/client/index.js";
import { verifyRound } from "../shared/src/client/verify-round.js";
import type { BetSettled, PlacedBetView } from "../shared/src/commands.js";

const byId = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`page is missing #${id}`);
  return element as T;
};

const ui = {
  race: byId("race"),
  roundId: byId("round-id"),
  countdownLeft: byId("countdown-left"),
  countdownBar: byId("countdown-bar"),
  track: byId("track"),
  raceBar: byId("race-bar"),
  raceTime: byId("race-time"),
  winner: byId("winner"),
  ranking: byId("ranking"),
  nextRound: byId("next-round"),
  state: byId("conn-state"),
  node: byId("conn-node"),
  continuity: byId("conn-continuity"),
  detail: byId("conn-detail"),
  notice: byId("notice"),
  user: byId("user"),
  userChannel: byId("user-channel"),
  portfolio: byId("portfolio"),
  portfolioEmpty: byId("portfolio-empty"),
  odds: byId("odds"),
  stake: byId<HTMLInputElement>("stake"),
  betStatus: byId("bet-status"),
  verified: byId("verified"),
  bets: byId("bets"),
  betsEmpty: byId("bets-empty"),
  rounds: byId("rounds"),
  log: byId("log"),
};

/** What the animation frame loop interpolates between ticks (local clock). */
const view = {
  screen: "none" as Screen | "none",
  roundId: null as number | null,
  runners: 8,
  raceMs: 0,
  countdown: null as { timeLeft: number; total: number; at: number } | null,
  race: null as { timeInRace: number; at: number } | null,
  nextRoundAt: null as { inMs: number; at: number } | null,
  /** The round whose odds the bet buttons show, and those odds. */
  oddsRound: 0,
  odds: [] as readonly number[],
  /** race_started's commitment per round: what the revealed seed is checked against. */
  commitments: new Map<number, string>(),
};

let client: GatewayClient | null = null;

function log(line: string): void {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${line}`;
  ui.log.prepend(item);
  while (ui.log.children.length > 30) ui.log.lastElementChild?.remove();
}

function setScreen(screen: Screen, roundId: number): void {
  if (view.roundId !== roundId) {
    // A new round, or one a resync jumped to: nothing of the last one's results applies.
    view.roundId = roundId;
    view.nextRoundAt = null;
    ui.roundId.textContent = String(roundId);
    ui.winner.textContent = "?";
    ui.ranking.replaceChildren();
    ui.nextRound.textContent = "–";
  }
  if (view.screen === screen) return;
  view.screen = screen;
  ui.race.dataset["screen"] = screen;
  if (screen === "movie_screen") drawTrack();
}

function drawTrack(): void {
  ui.track.replaceChildren(
    ...Array.from({ length: view.runners }, (_, i) => {
      const lane = document.createElement("div");
      lane.className = "lane";
      const runner = document.createElement("span");
      runner.className = "runner";
      runner.textContent = String(i + 1);
      lane.append(runner);
      return lane;
    }),
  );
}

function onTimer(data: TimerUpdate): void {
  setScreen("game_screen", data.roundId);
  view.countdown = { timeLeft: data.timer.timeLeft, total: data.timer.totalDuration, at: performance.now() };
  // A page that joined mid-round learns the odds from the first tick.
  if (view.oddsRound !== data.roundId) showOdds(data.roundId, data.odds);
}

function showOdds(roundId: number, odds: readonly number[]): void {
  view.oddsRound = roundId;
  view.odds = odds;
  ui.betStatus.textContent = "";
  ui.odds.replaceChildren(
    ...odds.map((price, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "bet";
      button.dataset["runner"] = String(i + 1);
      button.textContent = `Runner ${i + 1} · ${price.toFixed(2)}`;
      button.addEventListener("click", () => void placeBet(roundId, i + 1, price));
      return button;
    }),
  );
}

/** One row per bet in "Your bets", keyed by bet id; settlement updates it in place. */
function showBet(bet: Pick<PlacedBetView, "betId" | "roundId" | "selection" | "amount" | "odds">, status: string, payout: number | null): void {
  ui.betsEmpty.hidden = true;
  let row = ui.bets.querySelector<HTMLTableRowElement>(`tr[data-bet="${CSS.escape(bet.betId)}"]`);
  if (row === null) {
    row = document.createElement("tr");
    row.dataset["bet"] = bet.betId;
    ui.bets.prepend(row);
    while (ui.bets.children.length > 20) ui.bets.lastElementChild?.remove();
  }
  row.dataset["status"] = status;
  const cells = [`#${bet.roundId}`, String(bet.selection), String(bet.amount), bet.odds.toFixed(2), status, payout === null ? "–" : String(payout)];
  row.replaceChildren(
    ...cells.map((text) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      return cell;
    }),
  );
}

/** 16 random bytes as hex; getRandomValues works outside secure contexts too, unlike randomUUID. */
function newIdempotencyKey(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function placeBet(roundId: number, selection: number, odds: number): Promise<void> {
  if (client === null) return;
  const amount = Math.floor(Number(ui.stake.value));
  ui.betStatus.textContent = `placing ${amount} on runner ${selection}…`;
  try {
    const { result } = await client.command("place_bet", { roundId, selection, amount, odds, idempotencyKey: newIdempotencyKey() });
    showBet(result.bet, "accepted", null);
    ui.betStatus.textContent = `bet ${result.bet.betId} accepted: ${amount} on runner ${selection} at ${odds.toFixed(2)}`;
  } catch (err) {
    ui.betStatus.textContent = `bet refused: ${err instanceof Error ? err.message : String(err)}`;
  }
}

function onBetSettled(data: BetSettled): void {
  showBet(data, data.status, data.payout);
  log(`bet ${data.betId} on round ${data.roundId}: ${data.status}, payout ${data.payout}`);
}

/** Adds the round to "Rounds", then checks its seed against race_started's commitment and marks it. */
function showRoundResult(data: RoundFinished): void {
  const item = document.createElement("li");
  item.dataset["round"] = String(data.roundId);
  item.textContent = `Round ${data.roundId}: runner ${data.result.winner} won · `;
  const mark = document.createElement("span");
  mark.className = "mark";
  mark.dataset["state"] = "pending";
  mark.textContent = "checking…";
  item.append(mark);
  ui.rounds.prepend(item);
  while (ui.rounds.children.length > 10) ui.rounds.lastElementChild?.remove();
  ui.verified.dataset["state"] = "pending";
  ui.verified.textContent = "checking…";

  // Joined after the race started: only round_finished's own copy of the commitment is known.
  const committed = view.commitments.get(data.roundId);
  view.commitments.delete(data.roundId);
  if (globalThis.crypto?.subtle === undefined) {
    // Web Crypto exists only in secure contexts (HTTPS, or localhost).
    for (const target of [mark, ui.verified]) target.textContent = "cannot verify here (needs HTTPS)";
    return;
  }
  void verifyRound({ commitment: committed ?? data.commitment, seed: data.seed, ranking: data.result.ranking }).then(
    (outcome) => {
      const state = outcome.verified ? "verified" : "failed";
      const text = outcome.verified ? `verified${committed === undefined ? " (commitment from round_finished)" : ""}` : `NOT verified: ${outcome.reason}`;
      for (const target of [mark, ...(ui.roundId.textContent === String(data.roundId) ? [ui.verified] : [])]) {
        target.dataset["state"] = state;
        target.textContent = text;
      }
    },
    (err: unknown) => log(`verifying round ${data.roundId} failed: ${String(err)}`),
  );
}

function onRaceSync(data: RaceSync): void {
  setScreen(data.currentScreen, data.roundId);
  view.race = { timeInRace: data.timeInRace, at: performance.now() };
}

function onFinished(data: RoundFinished): void {
  setScreen("finish_screen", data.roundId);
  ui.winner.textContent = String(data.result.winner);
  ui.ranking.replaceChildren(
    ...data.result.ranking.map((runner) => {
      const item = document.createElement("li");
      item.textContent = `runner ${runner}`;
      return item;
    }),
  );
  view.nextRoundAt = { inMs: data.nextRoundAt - data.serverTime, at: performance.now() };
}

/** Runner positions are decoration (the ranking stays secret until round_finished). */
function runnerShare(runner: number, progress: number): number {
  const wobble = Math.sin(progress * 9 + runner * 1.7) * 0.04 + Math.sin(progress * 3 + runner) * 0.03;
  return Math.min(1, Math.max(0, progress + wobble * progress * (1 - progress) * 4));
}

function frame(): void {
  const now = performance.now();
  if (view.screen === "game_screen" && view.countdown !== null) {
    const left = Math.max(0, view.countdown.timeLeft - (now - view.countdown.at));
    ui.countdownLeft.textContent = `${(left / 1000).toFixed(1)} s`;
    ui.countdownBar.style.width = `${view.countdown.total > 0 ? (left / view.countdown.total) * 100 : 0}%`;
  }
  if (view.screen === "movie_screen" && view.race !== null) {
    const inRace = view.race.timeInRace + (now - view.race.at);
    ui.raceTime.textContent = (inRace / 1000).toFixed(1);
    const progress = view.raceMs > 0 ? Math.min(1, inRace / view.raceMs) : 0;
    ui.raceBar.style.width = `${progress * 100}%`;
    ui.track.querySelectorAll<HTMLElement>(".runner").forEach((runner, i) => {
      runner.style.left = `calc(${runnerShare(i + 1, progress) * 100}% - ${runnerShare(i + 1, progress) * 1.2}rem)`;
    });
  }
  if (view.screen === "finish_screen" && view.nextRoundAt !== null) {
    ui.nextRound.textContent = `${(Math.max(0, view.nextRoundAt.inMs - (now - view.nextRoundAt.at)) / 1000).toFixed(1)} s`;
  }
  requestAnimationFrame(frame);
}

function showState(state: ClientEvents["state"]["state"], detail: string): void {
  document.body.dataset["state"] = state;
  ui.state.textContent = state;
  ui.detail.textContent = detail;
}

/**
 * Whether the channels came back without loss after a reconnect or a gap:
 * `resumed` while every one was recovered, `resynced` once one was not.
 */
function showContinuity(continuity: "resumed" | "resynced" | null, title = ""): void {
  if (continuity === null) delete document.body.dataset["continuity"];
  else document.body.dataset["continuity"] = continuity;
  ui.continuity.hidden = continuity === null;
  ui.continuity.textContent = continuity ?? "";
  ui.continuity.title = title;
}

function onResumed(client: GatewayClient, info: ResumedInfo): void {
  const node = client.node ?? "?";
  if (info.recovered) {
    const replayed = info.since !== null && info.position !== null && info.since.epoch === info.position.epoch ? info.position.offset - info.since.offset : 0;
    log(`${info.channel}: resumed on ${node}, ${replayed} missed message(s) replayed`);
    if (document.body.dataset["continuity"] !== "resynced") showContinuity("resumed", "every message missed while away was replayed");
    return;
  }
  const how = info.channel === "race" ? "screen redrawn from the snapshot" : "messages were lost";
  log(`${info.channel}: resynced on ${node} (${info.cause}), ${how}`);
  showContinuity("resynced", "some messages were no longer in history: the race screen was redrawn from the server's snapshot");
}

function renderPortfolio(data: PortfolioUpdate): void {
  ui.portfolioEmpty.hidden = true;
  ui.portfolio.replaceChildren(
    ...Object.entries(data).flatMap(([key, value]) => {
      const term = document.createElement("dt");
      term.textContent = key;
      const description = document.createElement("dd");
      description.textContent = typeof value === "string" ? value : JSON.stringify(value);
      return [term, description];
    }),
  );
}

function showNotice(html: string): void {
  ui.notice.innerHTML = html;
  ui.notice.hidden = false;
}

class NoDevTokens extends Error {}

async function fetchDevToken(sub: string): Promise<string> {
  const res = await fetch(`/v1/dev/token?sub=${encodeURIComponent(sub)}`, { cache: "no-store" });
  if (res.status === 404) throw new NoDevTokens("this cluster does not hand out development tokens");
  if (!res.ok) throw new Error(`dev token: HTTP ${res.status}`);
  const body = (await res.json()) as { token: string };
  return body.token;
}

function wire(connected: GatewayClient): void {
  client = connected;
  wireEvents(connected);
}

function wireEvents(client: GatewayClient): void {
  client.on("connecting", ({ attempt }) => showState("connecting", attempt > 0 ? `attempt ${attempt + 1}` : ""));
  client.on("connected", (info) => {
    showState("connected", "");
    showContinuity(null);
    ui.node.textContent = info.node;
    ui.user.textContent = info.user;
    ui.userChannel.textContent = `user:${info.user}`;
    log(`connected to ${info.node} as ${info.user}`);
  });
  client.on("disconnected", ({ code, reason, willReconnect }) => {
    ui.node.textContent = "";
    showContinuity(null);
    showState("disconnected", `${code}${reason ? ` ${reason}` : ""}`);
    log(`disconnected: ${code} ${reason}${willReconnect ? "" : " (not reconnecting)"}`);
  });
  client.on("reconnecting", ({ attempt, delayMs, strategy }) => {
    showState("reconnecting", `in ${(delayMs / 1000).toFixed(1)} s (${strategy}, attempt ${attempt})`);
    log(`reconnecting in ${delayMs} ms (${strategy}, attempt ${attempt})`);
  });
  client.on("resumed", (info) => onResumed(client, info));
  client.on("refreshed", () => log("token refreshed"));
  client.on("error", (error) => log(`error: ${error.code} ${error.message}`));

  client.subscribe("race", {
    round_started: (data) => {
      view.runners = data.runners;
      view.raceMs = data.durations.raceMs;
      setScreen("game_screen", data.roundId);
      showOdds(data.roundId, data.odds);
      log(`round ${data.roundId} started`);
    },
    timer_update: onTimer,
    race_started: (data) => {
      view.raceMs = data.raceDuration;
      view.race = { timeInRace: 0, at: performance.now() };
      view.commitments.set(data.roundId, data.commitment);
      setScreen("movie_screen", data.roundId);
    },
    race_sync: onRaceSync,
    round_finished: (data) => {
      onFinished(data);
      showRoundResult(data);
      log(`round ${data.roundId}: runner ${data.result.winner} won`);
    },
    round_voided: (data) => {
      const item = document.createElement("li");
      item.dataset["round"] = String(data.roundId);
      item.textContent = `Round ${data.roundId}: voided (${data.reason}), stakes returned`;
      ui.rounds.prepend(item);
      log(`round ${data.roundId} voided: ${data.reason}`);
    },
  });

  // The server joins user:<sub> by itself; attaching in the first `connected`
  // (before any later frame is read) loses nothing.
  const offConnected = client.on("connected", (info) => {
    offConnected();
    client.subscribe(`user:${info.user}`, {
      portfolio_update: renderPortfolio,
      message: (event, data) => {
        if (event === "bet_settled") onBetSettled(data as unknown as BetSettled);
      },
    });
  });
}

async function main(): Promise<void> {
  requestAnimationFrame(frame);
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const hashToken = new URLSearchParams(location.hash.slice(1)).get("token");
  if (hashToken !== null && hashToken !== "") {
    wire(connect(url, { token: hashToken }));
    return;
  }
  const sub = new URLSearchParams(location.search).get("sub") ?? "alice";
  let first: string;
  try {
    first = await fetchDevToken(sub);
  } catch (err) {
    showState("disconnected", "no token");
    if (err instanceof NoDevTokens) {
      showNotice(
        "This cluster runs in <strong>production</strong> mode and hands out no development tokens. " +
          "Open this page with a token: <code>/#token=&lt;JWT&gt;</code>.",
      );
    } else {
      showNotice(`Could not get a development token: ${String(err instanceof Error ? err.message : err)}. Reload to retry.`);
    }
    return;
  }
  // Every later connect and every refresh asks for a fresh token.
  let cached: string | null = first;
  const client = connect(url, {
    getToken: async () => {
      const token = cached ?? (await fetchDevToken(sub));
      cached = null;
      return token;
    },
  });
  wire(client);
  Object.assign(window, { gatewayClient: client });
}

void main();
