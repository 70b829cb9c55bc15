/**
 * The game screen served at `/`. Everything it shows comes through the SDK:
 * `race` drives the countdown, the race and the results; the bet slip sends
 * `place_bet`; `user:<sub>` brings the settlement of this user's bets and the
 * portfolio; `forecasts` the ticker; the client's own events the connection
 * badge and banner. After a reconnect the page says whether every channel
 * was resumed (nothing lost) or resynced (the race screen redrawn from the
 * snapshot). The build maps the SDK imports to the served `/sdk.js` and
 * `/verify-round.js`, so the page runs the same bundles third parties load.
 */

import { connect, type GatewayClient } from "../shared/src/client/index.js";
import type { BetSettled } from "../shared/src/commands.js";
import { closeBets, connectBetSlip, mountBetSlip, openBets } from "./bet-slip.js";
import { betSettled, onBetsChanged } from "./bets-view.js";
import { showOffline, watchConnection } from "./connection-view.js";
import { byId, h } from "./dom.js";
import { onForecast } from "./forecast-ticker.js";
import { renderPortfolio } from "./portfolio-view.js";
import { drawRace, raceHandlers, showMyResult } from "./race-view.js";

function frame(now: number): void {
  drawRace(now);
  requestAnimationFrame(frame);
}

function wire(client: GatewayClient): void {
  watchConnection(client);
  connectBetSlip((data) => client.command("place_bet", data));
  onBetsChanged(() => showMyResult());
  client.subscribe("race", raceHandlers({ open: openBets, close: closeBets }));
  client.subscribe("forecasts", { forecast_update: onForecast });

  // The server joins user:<sub> by itself; attaching in the first `connected`
  // (before any later frame is read) loses nothing.
  const offConnected = client.on("connected", (info) => {
    offConnected();
    byId("user").textContent = info.user;
    byId("user-channel").textContent = `user:${info.user}`;
    client.subscribe(`user:${info.user}`, {
      portfolio_update: renderPortfolio,
      message: (event, data) => {
        if (event === "bet_settled") betSettled(data as unknown as BetSettled);
      },
    });
  });
}

function showNotice(...content: ReadonlyArray<Node | string>): void {
  const notice = byId("notice");
  notice.replaceChildren(...content);
  notice.hidden = false;
}

class NoDevTokens extends Error {}

async function fetchDevToken(sub: string): Promise<string> {
  const res = await fetch(`/v1/dev/token?sub=${encodeURIComponent(sub)}`, { cache: "no-store" });
  if (res.status === 404) throw new NoDevTokens("this cluster does not hand out development tokens");
  if (!res.ok) throw new Error(`dev token: HTTP ${res.status}`);
  const body = (await res.json()) as { token: string };
  return body.token;
}

async function main(): Promise<void> {
  mountBetSlip();
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
    showOffline("no token");
    if (err instanceof NoDevTokens) {
      showNotice("This cluster runs in ", h("strong", {}, "production"), " mode and hands out no development tokens. Open this page with a token: ", h("code", {}, "/#token=<JWT>"), ".");
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
