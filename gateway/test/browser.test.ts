/// <reference lib="dom" />
// The functions passed to page.evaluate/waitForFunction run in the page: they need DOM types.

/**
 * The game screen at `/` in headless Chromium (Debian's /usr/bin/chromium
 * driven by playwright-core; no browser download) against a real cluster:
 * Redis, Postgres, two clock-driving gateway nodes in development mode,
 * NGINX, with rounds a few seconds long.
 *
 * - A player using only the keyboard picks a runner and a stake on the bet
 *   slip and confirms; a stake over the limit is refused in words, the next
 *   bet is acknowledged with its id. The runners move during the race
 *   without any ranking, then stand in the finishing order; the round is
 *   verified and the bet settled on the page. The forecasts ticker and the
 *   portfolio show what a backend publishes. When the page's node is
 *   SIGKILLed, it reconnects to the other one and says every channel was
 *   resumed.
 * - On a 360×740 phone with reduced motion nothing scrolls sideways on any
 *   screen, a bet goes in by tapping, and nothing animates. Forecasts of
 *   npm start's demo feed are labelled as demo data.
 * - A production node hands out no token and the page says so.
 *
 * UPDATE_SCREENSHOT=1 (npm run screenshots) also writes the docs/screen-*.png
 * the README shows, squeezed by pngquant.
 */

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_ASSETS, nextForecasts } from "../../scripts/lib/demo-forecasts.js";
import { startNginx, type NginxHandle } from "../../scripts/lib/nginx.js";
import { repoRoot } from "../../scripts/lib/paths.js";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { publish } from "./support/ws-client.js";

const CHROMIUM = "/usr/bin/chromium";
const USER = "browser-user";
const PHONE_USER = "phone-user";
const UPDATE_SCREENSHOTS = process.env["UPDATE_SCREENSHOT"] === "1";

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
    ROUND_WAIT_MS: "5000",
    ROUND_RACE_MS: "2500",
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

function waitForScreen(page: Page, screen: string, timeout = 12_000): Promise<unknown> {
  return page.waitForFunction((name) => document.getElementById("race")?.dataset["screen"] === name, screen, { timeout });
}

/** Early in a countdown (3 of its 5 s left, or more), so a few bets are in well before the race starts. */
function waitForFreshCountdown(page: Page): Promise<unknown> {
  return page.waitForFunction(
    () => document.getElementById("race")?.dataset["screen"] === "game_screen" && parseFloat(document.getElementById("countdown-bar")?.style.width ?? "0") > 60,
    undefined,
    { timeout: 15_000 },
  );
}

/** Each runner's drawn position on the track (0 start .. 1 finish line). */
function runnerPositions(page: Page): Promise<Record<string, number>> {
  return page.$$eval(".lane", (lanes) =>
    Object.fromEntries(lanes.map((lane) => [(lane as HTMLElement).dataset["runner"] ?? "", Number((lane.querySelector(".runner") as HTMLElement).style.getPropertyValue("--pos"))])),
  );
}

/** No sideways scrolling: the document is no wider than the viewport. */
function pageWidth(page: Page): Promise<number> {
  return page.evaluate(() => document.documentElement.scrollWidth);
}

/** Until the finishing order's transition has run, the picture would catch the runners midway. */
function waitForStillness(page: Page): Promise<unknown> {
  return page.waitForFunction(() => document.getAnimations().filter((a) => a.playState === "running").length === 0, undefined, { timeout: 5000 });
}

/** A picture for the README (pngquant-squeezed) with UPDATE_SCREENSHOT=1; otherwise into the temp dir, proving the page renders. */
async function screenshot(page: Page, name: string): Promise<void> {
  const file = path.join(UPDATE_SCREENSHOTS ? path.join(repoRoot(), "docs") : userDataDir, name);
  await page.screenshot({ path: file });
  if (UPDATE_SCREENSHOTS) execFileSync("pngquant", ["--force", "--skip-if-larger", "--strip", "--quality=70-95", "--speed=1", "--output", file, "--", file]);
}

/** Tab from wherever the focus is until `selector` has it; bounded, like every loop in a test. */
async function tabTo(page: Page, selector: string): Promise<void> {
  for (let i = 0; i < 15; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s) === true, selector)) return;
    await page.keyboard.press("Tab");
  }
  throw new Error(`Tab never reached ${selector}`);
}

/** The page's subscription to `forecasts` is confirmed (it has a position), so a publish from now on reaches it. */
function forecastsJoined(page: Page): Promise<unknown> {
  return page.waitForFunction(() => ((window as unknown as { gatewayClient?: { position(c: string): unknown } }).gatewayClient?.position("forecasts") ?? null) !== null, undefined, { timeout: 5000 });
}

async function publishOk(body: unknown): Promise<void> {
  const published = await publish(nginx.url, TEST_PUBLISH_KEY, body);
  expect(published.status).toBe(200);
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: run scripts/ensure-system.sh chromium (Debian package chromium)`);
  if (UPDATE_SCREENSHOTS) execFileSync("pngquant", ["--version"], { stdio: "pipe" });
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
    viewport: { width: 1100, height: 760 },
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

describe("game screen in Chromium", () => {
  it("a keyboard-only player bets, watches the race, sees the result and the settlement, and the page survives the loss of its node", async () => {
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

    // What backends publish: forecasts for everyone, a portfolio for this user.
    await forecastsJoined(page);
    const at = Date.now();
    await publishOk({
      messages: [
        { channel: "forecasts", event: "forecast_update", data: { asset: "BTC", p: 0.62, at } },
        { channel: "forecasts", event: "forecast_update", data: { asset: "ETH", p: 0.41, at } },
        { channel: "forecasts", event: "forecast_update", data: { asset: "SOL", p: 0.55, at } },
        { channel: "forecasts", event: "forecast_update", data: { asset: "BTC", p: 0.645, at: at + 1 } },
        { channel: "forecasts", event: "forecast_update", data: { asset: "ETH", p: 0.392, at: at + 1 } },
      ],
    });
    await publishOk({ channel: `user:${USER}`, event: "portfolio_update", data: { cash: 42_000, positions: [{ asset: "BTC", size: 3 }, { asset: "ETH", size: 12 }] } });
    await page.waitForFunction(() => document.querySelectorAll("#forecasts li").length === 3, undefined, { timeout: 5000 });
    expect(await page.$$eval("#forecasts li", (items) => items.map((i) => [(i as HTMLElement).dataset["asset"], (i as HTMLElement).dataset["trend"], i.querySelector(".value")?.textContent]))).toEqual([
      ["BTC", "up", "64.5 %"],
      ["ETH", "down", "39.2 %"],
      ["SOL", "flat", "55.0 %"],
    ]);
    expect(await page.textContent('#forecasts li[data-asset="BTC"] .change')).toContain("up 2.5 pt");
    expect(await page.isVisible("#ticker-demo")).toBe(false);
    await page.waitForFunction(() => document.getElementById("portfolio-cash")?.textContent === "42,000", undefined, { timeout: 5000 });
    expect(await page.$$eval("#portfolio-positions li", (items) => items.map((i) => i.textContent))).toEqual(["asset BTC · size 3", "asset ETH · size 12"]);

    // Bets are open: the slip offers every runner at the round's odds.
    await waitForFreshCountdown(page);
    const betRound = (await pageState(page)).round;
    expect(await page.textContent("#slip-round")).toBe(`Round ${betRound}: bets are open`);
    const picks = await page.$$eval("#picks input", (inputs) => inputs.map((i) => i.getAttribute("aria-label") ?? ""));
    expect(picks).toHaveLength(8);
    for (const label of picks) expect(label).toMatch(/^Runner \d, odds \d+\.\d\d$/);

    // Keyboard only: Tab into the runners, an arrow picks runner 2 (focus visibly marked), Tab to the stake.
    await tabTo(page, 'input[name="runner"]');
    await page.keyboard.press("ArrowRight");
    expect(await page.$eval("#picks input:checked", (i) => (i as HTMLInputElement).value)).toBe("2");
    expect(await page.evaluate(() => document.activeElement?.matches(":focus-visible") === true)).toBe(true);
    expect(await page.$eval('.pick[data-runner="2"]', (label) => getComputedStyle(label).outlineStyle)).toBe("solid");
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("stake");

    // A stake over BET_MAX_AMOUNT: the gateway refuses it, the slip says why in words.
    await page.keyboard.press("ControlOrMeta+A");
    await page.keyboard.type("2000000");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.getElementById("bet-status")?.dataset["outcome"] === "refused", undefined, { timeout: 5000 });
    expect(await page.getAttribute("#bet-status", "data-code")).toBe("invalid_command");
    expect(await page.textContent("#bet-status")).toBe("The bet was refused: amount must be between 1 and 1000000. Nothing was placed.");

    // 250 on runner 2, confirmed with Enter: acknowledged with its bet id and listed.
    await page.keyboard.press("ControlOrMeta+A");
    await page.keyboard.type("250");
    expect(await page.textContent("#slip-payout")).toMatch(/^\d{1,3}(,\d{3})*$/);
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.getElementById("bet-status")?.dataset["outcome"] === "accepted", undefined, { timeout: 5000 });
    const ack = (await page.textContent("#bet-status")) ?? "";
    expect(ack).toMatch(new RegExp(`^Bet #\\d+ accepted: 250 on runner 2 at \\d+\\.\\d\\d in round ${betRound}\\. It pays [\\d,]+ if runner 2 wins\\.$`));
    const betId = /^Bet #(\d+)/.exec(ack)?.[1];
    expect(await page.$eval(`#bets tr[data-bet="${betId}"]`, (row) => [row.getAttribute("data-status"), row.querySelector("td")?.textContent])).toEqual(["accepted", `#${betRound}`]);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("stake");
    expect(await pageState(page)).toMatchObject({ screen: "game_screen", round: betRound });
    await screenshot(page, "screen-countdown.png");

    // The race: bets close, the runners move from race_sync and the local clock, all short of the line (no result yet).
    await waitForScreen(page, "movie_screen");
    expect(await page.getAttribute("#confirm", "aria-disabled")).toBe("true");
    const early = await runnerPositions(page);
    const earlyShare = await page.evaluate(() => parseFloat(document.getElementById("race-bar")?.style.width ?? "0"));
    expect(earlyShare).toBeLessThan(80);
    // Mid-race for the picture, and well after the first look.
    await page.waitForFunction((since) => parseFloat(document.getElementById("race-bar")?.style.width ?? "0") > Math.max(45, since + 10), earlyShare, { timeout: 5000 });
    const later = await runnerPositions(page);
    expect(Object.keys(later)).toHaveLength(8);
    for (const [runner, position] of Object.entries(later)) {
      expect(position).toBeGreaterThan(early[runner]!);
      expect(position).toBeLessThanOrEqual(0.8);
    }
    expect(await page.textContent("#race-time")).toMatch(/^\d+\.\d s of 2\.5 s$/);
    expect(await page.$$eval(".lane .place", (labels) => labels.map((l) => l.textContent).join(""))).toBe("");
    await screenshot(page, "screen-race.png");
    // Confirming while the race runs sends nothing and says why.
    await page.keyboard.press("Enter");
    expect(await page.textContent("#bet-status")).toBe(`Bets on round ${betRound} are closed: the race has started. Nothing was placed.`);

    // The results: the winner, the runners in finishing order, the round verified against its commitment, the bet settled.
    await waitForScreen(page, "finish_screen");
    await page.waitForFunction(() => /^\d+$/.test(document.getElementById("winner")?.textContent ?? ""), undefined, { timeout: 5000 });
    const winner = Number(await page.textContent("#winner"));
    const ranking = await page.$$eval("#ranking li", (items) => items.map((i) => Number((i as HTMLElement).dataset["runner"])));
    expect(ranking[0]).toBe(winner);
    expect([...ranking].sort()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await page.getAttribute(`.lane[data-runner="${winner}"]`, "data-place")).toBe("1");
    await page.waitForFunction(() => document.getElementById("verified")?.dataset["state"] === "verified", undefined, { timeout: 5000 });
    expect(await page.textContent("#verified")).toBe("verified");
    expect(await page.textContent(`#rounds li[data-round="${betRound}"]`)).toContain("verified");
    await page.waitForFunction((id) => ["won", "lost"].includes(document.querySelector<HTMLElement>(`#bets tr[data-bet="${id}"]`)?.dataset["status"] ?? ""), betId, { timeout: 5000 });
    const settledRow = await page.$$eval(`#bets tr[data-bet="${betId}"] td`, (cells) => cells.map((c) => c.textContent ?? ""));
    const price = Number(settledRow[3]);
    const payout = Math.floor((250 * Math.round(price * 100)) / 100);
    expect(settledRow).toEqual([`#${betRound}`, "2", "250", price.toFixed(2), winner === 2 ? "won" : "lost", winner === 2 ? payout.toLocaleString("en") : "0"]);
    expect(await page.textContent("#my-result")).toBe(winner === 2 ? `250 on runner 2: won ${payout.toLocaleString("en")}` : "250 on runner 2: lost");
    expect(await page.getAttribute('#ranking li[data-runner="2"]', "class")).toBe("mine");
    await page.waitForFunction(() => Array.from(document.querySelectorAll("#announcer p")).some((said) => (said.textContent ?? "").startsWith("Your bet of 250 on runner 2")), undefined, { timeout: 5000 });
    await waitForStillness(page);
    const finish = await runnerPositions(page);
    expect(finish[String(winner)]).toBe(1);
    expect(Math.max(...Object.values(finish))).toBe(1);
    await screenshot(page, "screen-results.png");

    // Its node dies: the page reconnects by itself to the other one, resumes every channel and says so.
    const served = await pageState(page);
    const victim = nodes.find((n) => n.name === served.node)!;
    await page.evaluate(() => {
      const seen: string[] = [];
      Object.assign(window, { bannerKinds: seen });
      const banner = document.getElementById("conn-banner")!;
      new MutationObserver(() => seen.push(banner.dataset["kind"] ?? "")).observe(banner, { attributes: true, attributeFilter: ["data-kind"] });
    });
    await victim.proc.kill9();
    await page.waitForFunction((gone) => document.body.dataset["state"] === "connected" && (document.getElementById("conn-node")?.textContent ?? "") !== "" && document.getElementById("conn-node")?.textContent !== gone, victim.name, { timeout: 15_000 });
    const after = await pageState(page);
    expect(after.node).not.toBe(victim.name);
    // History holds seconds of race ticks: every channel comes back where it stopped.
    await page.waitForFunction(
      (user) => ["race", "forecasts", `user:${user}`].every((channel) => (document.getElementById("conn-banner")?.textContent ?? "").includes(channel)),
      USER,
      { timeout: 10_000 },
    );
    expect(await page.getAttribute("#conn-banner", "data-kind")).toBe("resumed");
    expect(await page.textContent("#conn-banner")).toMatch(new RegExp(`^Lost ${victim.name}; back on ${after.node} after \\d+\\.\\d s: resumed .+; (nothing was missed|\\d+ missed messages? replayed, nothing lost)\\.$`));
    // It said the connection was lost before it said everything was back.
    const kinds = await page.evaluate(() => (window as unknown as { bannerKinds: string[] }).bannerKinds);
    expect(kinds[0]).toBe("lost");
    expect(kinds.at(-1)).toBe("resumed");
    expect(await page.evaluate(() => document.body.dataset["continuity"])).toBe("resumed");
    expect(await page.textContent("#conn-continuity")).toBe("resumed");
    expect(await page.textContent("#log")).toContain(`race: resumed on ${after.node}`);
    expect(await page.textContent("#log")).toContain("reconnecting");
    await screenshot(page, "screen-resumed.png");

    // And it keeps following the rounds, with nothing gone wrong on the page.
    const roundBefore = Number((await pageState(page)).round);
    await page.waitForFunction((round) => Number(document.getElementById("round-id")?.textContent) > round, roundBefore, { timeout: 15_000 });
    expect(await page.textContent("#log")).not.toContain("error:");
    expect(problems).toEqual([]);
    await page.close();
  }, 50_000);

  it("fits a phone: no sideways scrolling on any screen, a bet by tapping, no animation with reduced motion", async () => {
    const page = await context.newPage();
    await page.setViewportSize({ width: 360, height: 740 });
    await page.emulateMedia({ reducedMotion: "reduce" });
    await page.goto(`${nginx.url}/?sub=${PHONE_USER}`);
    await page.waitForFunction(() => document.body.dataset["state"] === "connected", undefined, { timeout: 15_000 });
    await forecastsJoined(page);
    await publishOk({ messages: ["BTC", "ETH", "SOL", "XAU"].map((asset, i) => ({ channel: "forecasts", event: "forecast_update", data: { asset, p: 0.3 + i / 10, at: Date.now() } })) });
    await page.waitForFunction(() => document.querySelectorAll("#forecasts li").length === 4, undefined, { timeout: 5000 });
    await waitForFreshCountdown(page);
    expect(await pageWidth(page)).toBeLessThanOrEqual(360);

    await page.click('.pick[data-runner="5"]');
    await page.click('#presets button[data-stake="500"]');
    await page.click("#confirm");
    await page.waitForFunction(() => document.getElementById("bet-status")?.dataset["outcome"] === "accepted", undefined, { timeout: 5000 });
    expect(await page.textContent("#bet-status")).toMatch(/^Bet #\d+ accepted: 500 on runner 5 at /);
    expect(await pageWidth(page)).toBeLessThanOrEqual(360);
    await screenshot(page, "screen-phone.png");

    await waitForScreen(page, "movie_screen");
    expect(await pageWidth(page)).toBeLessThanOrEqual(360);
    await waitForScreen(page, "finish_screen");
    await page.waitForFunction(() => /^\d+$/.test(document.getElementById("winner")?.textContent ?? ""), undefined, { timeout: 5000 });
    expect(await pageWidth(page)).toBeLessThanOrEqual(360);
    // Reduced motion: the runners jump to their places, the ticker does not flash.
    expect(await page.$eval(".lane .runner", (runner) => getComputedStyle(runner).transitionDuration)).toBe("0s");
    expect(await page.evaluate(() => document.getAnimations().length)).toBe(0);

    // Updates of npm start's demo feed are labelled as demo data.
    expect(await page.isVisible("#ticker-demo")).toBe(false);
    await publishOk({ channel: "forecasts", event: "forecast_update", data: { ...nextForecasts(new Map(), Date.now(), Math.random)[0]! } });
    await page.waitForSelector("#ticker-demo:not([hidden])", { timeout: 5000 });
    expect(await page.getAttribute(`#forecasts li[data-asset="${DEMO_ASSETS[0]}"]`, "title")).toMatch(/\(demo data\)$/);
    await page.close();
  }, 30_000);

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
