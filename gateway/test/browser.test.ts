/// <reference lib="dom" />
// The functions passed to page.evaluate/waitForFunction run in the page: they need DOM types.

/**
 * The live page in headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core; no browser download) against a real cluster: Redis,
 * Postgres, two clock-driving gateway nodes in development mode, NGINX. The
 * page connects through NGINX with a development token, the countdown moves,
 * the odds show, a bet placed from the page appears under "Your bets" and is
 * settled there, the screens follow the race, the finished round is marked
 * verified, a portfolio update for its user appears, and it reconnects by
 * itself when its node is killed, resuming every channel where it stopped and
 * saying so. A production node hands out no token and the page says so.
 *
 * UPDATE_SCREENSHOT=1 also writes docs/race-screen.png.
 */

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNginx, type NginxHandle } from "../../scripts/lib/nginx.js";
import { repoRoot } from "../../scripts/lib/paths.js";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { publish } from "./support/ws-client.js";

const CHROMIUM = "/usr/bin/chromium";
const USER = "browser-user";

let redis: RedisHandle;
let postgres: PostgresHandle;
let nginx: NginxHandle;
let nodes: GatewayNode[] = [];
let production: GatewayNode | null = null;
let context: BrowserContext;
let userDataDir: string;
const prefix = uniquePrefix("browser");

function clusterEnv(): Record<string, string> {
  return {
    GATEWAY_ENV: "development",
    CLOCK_ENABLED: "true",
    DATABASE_URL: postgres.url,
    PG_SCHEMA: `browser_${process.pid}`,
    ROUND_WAIT_MS: "4000",
    ROUND_RACE_MS: "2000",
    ROUND_FINISH_MS: "1500",
    TIMER_UPDATE_INTERVAL_MS: "250",
    RACE_SYNC_INTERVAL_MS: "500",
    CLOCK_LEASE_TTL_MS: "1000",
    LOG_LEVEL: "warn",
  };
}

/** The page's own view of itself, read from the DOM. */
async function pageState(page: Page): Promise<{ state: string; node: string; screen: string; round: string }> {
  return page.evaluate(() => ({
    state: document.body.dataset["state"] ?? "",
    node: document.getElementById("conn-node")?.textContent ?? "",
    screen: document.getElementById("race")?.dataset["screen"] ?? "",
    round: document.getElementById("round-id")?.textContent ?? "",
  }));
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: run scripts/ensure-system.sh (Debian package chromium)`);
  // The page and bundle the nodes serve: rebuilt here so a test never runs a stale one.
  const root = repoRoot();
  execFileSync(process.execPath, [path.join(root, "dist/scripts/build-web.js")], { cwd: root, stdio: "pipe" });

  [redis, postgres] = await Promise.all([startRedis(), startPostgres({ fast: true })]);
  nodes = await Promise.all(["web-1", "web-2"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env: clusterEnv() })));
  nginx = await startNginx({ nodes: nodes.map((n) => ({ name: n.name, host: "127.0.0.1", port: n.port })) });
  const page = await fetch(`${nginx.url}/`);
  if (page.status !== 200 || !(page.headers.get("content-type") ?? "").startsWith("text/html")) {
    throw new Error(`GET / answered ${page.status}: the live page is not wired (attachStaticSite / attachDevTokenRoute in main.ts)`);
  }

  userDataDir = await mkdtemp(path.join(os.tmpdir(), "gw-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 460 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

afterAll(async () => {
  await context?.close();
  if (userDataDir !== undefined) await rm(userDataDir, { recursive: true, force: true });
  await nginx?.stop();
  await Promise.all([...nodes, ...(production === null ? [] : [production])].map((n) => (n.proc.isRunning() ? n.stop() : Promise.resolve(null))));
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

describe("live race page in Chromium", () => {
  it("follows the race through NGINX, shows the portfolio, and survives the loss of its node", async () => {
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()}`);
    });
    await page.goto(`${nginx.url}/?sub=${USER}`);

    // Connected through NGINX to one of the nodes, as the development user.
    await page.waitForFunction(() => document.body.dataset["state"] === "connected", undefined, { timeout: 15_000 });
    const first = await pageState(page);
    expect(nodes.map((n) => n.name)).toContain(first.node);
    expect(await page.textContent("#user")).toBe(USER);

    // The countdown moves: the bar shrinks between two ticks of the same round.
    await page.waitForFunction(() => document.getElementById("race")?.dataset["screen"] === "game_screen", undefined, { timeout: 15_000 });
    await page.waitForFunction(
      () => {
        // The first width seen in a round, kept on the page between polls; done once it shrank.
        const holder = window as unknown as { countdownSeen?: { round: string; width: number } };
        const width = parseFloat(document.getElementById("countdown-bar")?.style.width ?? "");
        const round = document.getElementById("round-id")?.textContent ?? "";
        if (document.getElementById("race")?.dataset["screen"] !== "game_screen" || Number.isNaN(width)) return false;
        if (holder.countdownSeen === undefined || holder.countdownSeen.round !== round) {
          holder.countdownSeen = { round, width };
          return false;
        }
        return width < holder.countdownSeen.width - 1;
      },
      undefined,
      { timeout: 10_000 },
    );

    // The odds of every runner; a bet on runner 1 from the page is accepted and listed.
    const odds = await page.$$eval("#odds button", (buttons) => buttons.map((b) => b.textContent ?? ""));
    expect(odds).toHaveLength(8);
    for (const label of odds) expect(label).toMatch(/^Runner \d · \d+\.\d\d$/);
    // Early in a countdown, so the bet is in well before the race starts.
    await page.waitForFunction(() => document.getElementById("race")?.dataset["screen"] === "game_screen" && parseFloat(document.getElementById("countdown-bar")?.style.width ?? "0") > 50, undefined, { timeout: 10_000 });
    const betRound = (await pageState(page)).round;
    await page.fill("#stake", "250");
    await page.click('#odds button[data-runner="1"]');
    await page.waitForFunction(() => document.querySelector('#bets tr[data-status="accepted"]') !== null, undefined, { timeout: 5000 });
    expect(await page.textContent("#bets tr")).toContain(`#${betRound}`);
    expect(await page.textContent("#bet-status")).toContain("accepted");

    // The screen switches when the race starts, then to the results with a winner, checked against the commitment.
    await page.waitForFunction(() => document.getElementById("race")?.dataset["screen"] === "movie_screen", undefined, { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById("race")?.dataset["screen"] === "finish_screen" && /^\d+$/.test(document.getElementById("winner")?.textContent ?? ""), undefined, { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById("verified")?.dataset["state"] === "verified", undefined, { timeout: 5000 });
    expect(await page.textContent("#verified")).toBe("verified");
    expect(await page.textContent(`#rounds li[data-round="${betRound}"]`)).toContain("verified");
    // The bet is settled on the page by its bet_settled: won with stake × odds, or lost with 0.
    await page.waitForFunction(() => ["won", "lost"].includes(document.querySelector<HTMLElement>("#bets tr")?.dataset["status"] ?? ""), undefined, { timeout: 5000 });
    const winner = Number(await page.textContent("#winner"));
    const settledRow = await page.$$eval("#bets tr td", (cells) => cells.map((c) => c.textContent ?? ""));
    const price = Number(settledRow[3]);
    expect(settledRow).toEqual([`#${betRound}`, "1", "250", price.toFixed(2), winner === 1 ? "won" : "lost", winner === 1 ? String(Math.floor(250 * price)) : "0"]);

    // A portfolio update published for the signed-in user appears.
    const published = await publish(nginx.url, TEST_PUBLISH_KEY, { channel: `user:${USER}`, event: "portfolio_update", data: { cash: 4200, positions: [{ round: 3, runner: 5, stake: 100 }] } });
    expect(published.status).toBe(200);
    await page.waitForFunction(() => (document.getElementById("portfolio")?.textContent ?? "").includes("4200"), undefined, { timeout: 5000 });

    // A picture of the game screen for the docs, a third into the next countdown.
    await page.waitForFunction(() => document.getElementById("race")?.dataset["screen"] === "game_screen" && parseFloat(document.getElementById("countdown-bar")?.style.width ?? "100") < 70, undefined, { timeout: 10_000 });
    const shot = process.env["UPDATE_SCREENSHOT"] === "1" ? path.join(repoRoot(), "docs", "race-screen.png") : path.join(userDataDir, "race-screen.png");
    await page.screenshot({ path: shot });

    // Its node dies: the page reconnects by itself to the other one and keeps counting.
    const served = await pageState(page);
    const victim = nodes.find((n) => n.name === served.node)!;
    await victim.proc.kill9();
    await page.waitForFunction((gone) => document.body.dataset["state"] === "connected" && (document.getElementById("conn-node")?.textContent ?? "") !== "" && document.getElementById("conn-node")?.textContent !== gone, victim.name, { timeout: 15_000 });
    const after = await pageState(page);
    expect(after.node).not.toBe(victim.name);
    // Both channels came back where they stopped (history holds seconds of race ticks), and the badge says so.
    await page.waitForFunction(
      (user) => ["race: resumed on ", `user:${user}: resumed on `].every((line) => (document.getElementById("log")?.textContent ?? "").includes(line)),
      USER,
      { timeout: 10_000 },
    );
    expect(await page.evaluate(() => document.body.dataset["continuity"])).toBe("resumed");
    expect(await page.isVisible("#conn-continuity")).toBe(true);
    expect(await page.textContent("#conn-continuity")).toBe("resumed");
    expect(await page.textContent("#log")).toContain(`race: resumed on ${after.node}`);
    const roundBefore = Number((await pageState(page)).round);
    await page.waitForFunction((round) => Number(document.getElementById("round-id")?.textContent) > round, roundBefore, { timeout: 15_000 });
    expect(await page.textContent("#log")).toContain("reconnecting");
    expect(await page.textContent("#log")).not.toContain("error:");
    expect(problems).toEqual([]);

    // On a phone-sized screen nothing is cut off sideways: the header wraps, the panels stack.
    await page.setViewportSize({ width: 360, height: 740 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    expect(await page.isVisible("#conn-continuity")).toBe(true);
    await page.close();
  });

  it("asks for a token instead of minting one on a production node", async () => {
    production = await startGatewayNode({ name: "web-prod", redisUrl: redis.url, redisPrefix: prefix, env: { GATEWAY_ENV: "production", LOG_LEVEL: "warn" } });
    const refused = await fetch(`${production.httpUrl}/v1/dev/token?sub=${USER}`);
    expect(refused.status).toBe(404);

    const page = await context.newPage();
    await page.goto(`${production.httpUrl}/`);
    await page.waitForSelector("#notice:not([hidden])", { timeout: 10_000 });
    expect(await page.textContent("#notice")).toContain("production");
    expect(await pageState(page)).toMatchObject({ state: "disconnected" });

    // With a token in the fragment it connects (the fragment never reaches a server log).
    await page.goto(`${production.httpUrl}/#token=${token({ sub: "prod-viewer" })}`);
    await page.reload();
    await page.waitForFunction(() => document.body.dataset["state"] === "connected", undefined, { timeout: 10_000 });
    expect(await page.textContent("#conn-node")).toBe("web-prod");
    expect(await page.textContent("#user")).toBe("prod-viewer");
    await page.close();
  });
});
