/**
 * The live race screen served at `/`. Everything it shows comes through the
 * SDK: the `race` channel drives the screens, `user:<sub>` the portfolio, the
 * client's state events the badge. After a reconnect the badge says whether
 * every channel was resumed (nothing lost) or resynced (the race screen
 * redrawn from the snapshot). The build maps this import to the served
 * `/sdk.js`, so the page runs the same bundle third parties load.
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
};

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

function wire(client: GatewayClient): void {
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
      log(`round ${data.roundId} started`);
    },
    timer_update: onTimer,
    race_started: (data) => {
      view.raceMs = data.raceDuration;
      view.race = { timeInRace: 0, at: performance.now() };
      setScreen("movie_screen", data.roundId);
    },
    race_sync: onRaceSync,
    round_finished: (data) => {
      onFinished(data);
      log(`round ${data.roundId}: runner ${data.result.winner} won`);
    },
  });

  // The server joins user:<sub> by itself; attaching in the first `connected`
  // (before any later frame is read) loses nothing.
  const offConnected = client.on("connected", (info) => {
    offConnected();
    client.subscribe(`user:${info.user}`, { portfolio_update: renderPortfolio });
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
