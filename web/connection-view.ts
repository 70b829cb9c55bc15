/**
 * The connection as the player sees it: the badge (state, the node serving
 * the page, `resumed` or `resynced`), a banner that tells the story of a loss
 * in sentences (lost web-1 → reconnecting in 0.8 s → back on web-2, resumed,
 * 4 missed messages replayed), and the connection log. Everything comes from
 * the SDK's events; the banner is the live region screen readers hear.
 */

import type { GatewayClient, ResumedInfo } from "../shared/src/client/index.js";
import { byId, h, trimList } from "./dom.js";

type BannerKind = "lost" | "resuming" | "resumed" | "resynced";

/** A resumed or resynced banner stays this long, then the badge alone tells. */
const BANNER_MS = 12_000;

const ui = {
  state: byId("conn-state"),
  node: byId("conn-node"),
  continuity: byId("conn-continuity"),
  detail: byId("conn-detail"),
  banner: byId("conn-banner"),
  log: byId("log"),
};

export function log(line: string): void {
  ui.log.prepend(h("li", {}, `${new Date().toLocaleTimeString()} ${line}`));
  trimList(ui.log, 30);
}

let bannerTimer: ReturnType<typeof setTimeout> | undefined;

function banner(kind: BannerKind | null, text = ""): void {
  clearTimeout(bannerTimer);
  // The live region stays in the page, empty when there is nothing to say (CSS hides it).
  if (kind === null) delete ui.banner.dataset["kind"];
  else ui.banner.dataset["kind"] = kind;
  ui.banner.textContent = text;
  if (kind === "resumed" || kind === "resynced") bannerTimer = setTimeout(() => banner(null), BANNER_MS);
}

function showState(state: string, detail: string): void {
  document.body.dataset["state"] = state;
  ui.state.textContent = state;
  ui.detail.textContent = detail;
}

/** `resumed` while every channel came back recovered, `resynced` once one did not; null clears it. */
function showContinuity(continuity: "resumed" | "resynced" | null, title = ""): void {
  if (continuity === null) delete document.body.dataset["continuity"];
  else document.body.dataset["continuity"] = continuity;
  ui.continuity.hidden = continuity === null;
  ui.continuity.textContent = continuity ?? "";
  ui.continuity.title = title;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

/** What came back after one loss, channel by channel, for the banner's sentence. */
interface Recovery {
  readonly lostNode: string;
  readonly lostAt: number;
  resumed: string[];
  resynced: string[];
  replayed: number;
}

function missedCount(info: ResumedInfo): number {
  return info.since !== null && info.position !== null && info.since.epoch === info.position.epoch ? Math.max(0, info.position.offset - info.since.offset) : 0;
}

export function watchConnection(client: GatewayClient): void {
  let servedBy: string | null = null;
  /** Set from a drop until the next drop: what the banner reports. */
  let lost: { node: string; at: number } | null = null;
  let recovery: Recovery | null = null;

  client.on("connecting", ({ attempt }) => showState("connecting", attempt > 0 ? `attempt ${attempt + 1}` : ""));
  client.on("connected", (info) => {
    showState("connected", "");
    showContinuity(null);
    servedBy = info.node;
    ui.node.textContent = info.node;
    log(`connected to ${info.node} as ${info.user}`);
    if (lost !== null) {
      recovery = { lostNode: lost.node, lostAt: lost.at, resumed: [], resynced: [], replayed: 0 };
      banner("resuming", `Connected to ${info.node}. Resuming where the page stopped…`);
      lost = null;
    }
  });
  client.on("disconnected", ({ code, reason, willReconnect }) => {
    ui.node.textContent = "";
    showContinuity(null);
    showState("disconnected", `${code}${reason ? ` ${reason}` : ""}`);
    log(`disconnected: ${code} ${reason}${willReconnect ? "" : " (not reconnecting)"}`);
    lost = { node: servedBy ?? "the gateway", at: performance.now() };
    recovery = null;
    banner("lost", willReconnect ? `Lost the connection to ${lost.node} (${code}). Reconnecting…` : `Disconnected from ${lost.node} (${code}${reason ? ` ${reason}` : ""}). Reload the page to reconnect.`);
  });
  client.on("reconnecting", ({ attempt, delayMs, strategy }) => {
    const seconds = (delayMs / 1000).toFixed(1);
    showState("reconnecting", `in ${seconds} s (${strategy}, attempt ${attempt})`);
    log(`reconnecting in ${delayMs} ms (${strategy}, attempt ${attempt})`);
    banner("lost", `Lost the connection to ${lost?.node ?? servedBy ?? "the gateway"}. Reconnecting in ${seconds} s (attempt ${attempt})…`);
  });
  client.on("resumed", (info) => {
    const node = client.node ?? "?";
    const missed = missedCount(info);
    if (info.recovered) log(`${info.channel}: resumed on ${node}, ${missed} missed message(s) replayed`);
    else log(`${info.channel}: resynced on ${node} (${info.cause}), ${info.channel === "race" ? "screen redrawn from the snapshot" : "messages were lost"}`);
    if (info.recovered) {
      if (document.body.dataset["continuity"] !== "resynced") showContinuity("resumed", "every message missed while away was replayed");
    } else {
      showContinuity("resynced", "some messages were no longer in history: the race screen was redrawn from the server's snapshot");
    }

    // A gap on an open socket has no loss behind it: it gets a banner of its own.
    const current: Recovery = info.cause === "reconnect" && recovery !== null ? recovery : { lostNode: node, lostAt: performance.now(), resumed: [], resynced: [], replayed: 0 };
    if (info.cause !== "reconnect") recovery = null;
    (info.recovered ? current.resumed : current.resynced).push(info.channel);
    current.replayed += info.recovered ? missed : 0;
    const away = ((performance.now() - current.lostAt) / 1000).toFixed(1);
    const opening = info.cause === "reconnect" ? `Lost ${current.lostNode}; back on ${node} after ${away} s` : `The ${info.channel} feed had a gap (${info.cause})`;
    if (current.resynced.length === 0) {
      const missedPart = current.replayed === 0 ? "nothing was missed" : `${plural(current.replayed, "missed message")} replayed, nothing lost`;
      banner("resumed", `${opening}: resumed ${current.resumed.join(", ")}; ${missedPart}.`);
    } else {
      const redrawn = current.resynced.includes("race") ? " The race screen was redrawn from the server's snapshot." : "";
      const lostFeeds = current.resynced.filter((channel) => channel !== "race");
      const lostPart = lostFeeds.length > 0 ? ` Updates on ${lostFeeds.join(", ")} sent while away are lost; what shows there may be out of date until the next one.` : "";
      const resumedToo = current.resumed.length > 0 ? ` Resumed ${current.resumed.join(", ")} with nothing lost.` : "";
      banner("resynced", `${opening}: resynced ${current.resynced.join(", ")}, as some messages were no longer kept.${redrawn}${lostPart}${resumedToo}`);
    }
  });
  client.on("refreshed", () => log("token refreshed"));
  client.on("error", (error) => log(`error: ${error.code} ${error.message}`));
}

/** Before any client exists: no token, or production without one. */
export function showOffline(detail: string): void {
  showState("disconnected", detail);
}
