/// <reference lib="dom" />
// The functions passed to page.evaluate/waitForFunction run in the page: they need DOM types.

/**
 * Socket.IO stickiness without cookies, through real NGINX in front of three
 * real nodes: socket.io-client in Node with its default options keeps no
 * cookie, and neither does a cross-origin page that does not set
 * `withCredentials`. Their long-polling sessions must stay on one node by the
 * session id alone (`sid=<node>.<random>`, mapped by NGINX).
 */

import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { io, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MessageFrame } from "../../shared/src/protocol.js";
import { startNginx, type NginxHandle } from "../../scripts/lib/nginx.js";
import { repoRoot } from "../../scripts/lib/paths.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { publish } from "./support/ws-client.js";

const CHROMIUM = "/usr/bin/chromium";
/** Deliveries awaited one by one: each ends one long-polling request. */
const POLLING_ROUNDS = 30;

interface Welcome {
  node: string;
}

/** What a session saw besides its messages; a healthy one sees one welcome and nothing else. */
interface SessionLog {
  welcomes: Welcome[];
  messages: MessageFrame[];
  troubles: string[];
}

let redis: RedisHandle;
let nodes: GatewayNode[] = [];
let nginx: NginxHandle;
/** Serves the cross-origin page: another port is another origin. */
let pageServer: Server;
let pageOrigin: string;
const sockets: Socket[] = [];

function watch(socket: Socket): SessionLog {
  const log: SessionLog = { welcomes: [], messages: [], troubles: [] };
  socket.on("welcome", (welcome: Welcome) => log.welcomes.push(welcome));
  socket.on("message", (frame: MessageFrame) => log.messages.push(frame));
  socket.on("disconnect", (reason) => log.troubles.push(`disconnect: ${reason}`));
  socket.on("connect_error", (err) => log.troubles.push(`connect_error: ${err.message}`));
  return log;
}

function sequenceOf(frame: MessageFrame): number | undefined {
  return (frame.data as { seq?: number } | null)?.seq;
}

/** Publishes seq 0..rounds-1 to `channel`, each through the next node, and waits for each to arrive before the next. */
async function publishOneByOne(channel: string, rounds: number, arrived: (seq: number) => Promise<void>): Promise<void> {
  for (let seq = 0; seq < rounds; seq++) {
    const via = nodes[seq % nodes.length]!;
    expect((await publish(via.httpUrl, TEST_PUBLISH_KEY, { channel, event: "forecast_update", data: { seq } })).status).toBe(200);
    await arrived(seq);
  }
}

function pageHtml(): string {
  // The page connects with socket.io-client's defaults: no withCredentials.
  return `<!doctype html><meta charset="utf-8"><title>cross-origin</title>
<script src="/socket.io.min.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  const log = { welcomes: [], messages: [], troubles: [], subscribed: null };
  const socket = io(params.get("gateway"), { query: { token: params.get("token") }, transports: ["polling"] });
  window.session = { socket, log };
  socket.on("welcome", (welcome) => {
    log.welcomes.push(welcome);
    socket.emit("subscribe", { channel: params.get("channel") }, (answer) => { log.subscribed = answer; });
  });
  socket.on("message", (frame) => log.messages.push(frame));
  socket.on("disconnect", (reason) => log.troubles.push("disconnect: " + reason));
  socket.on("connect_error", (err) => log.troubles.push("connect_error: " + err.message));
</script>`;
}

async function startPageServer(): Promise<void> {
  const bundle = readFileSync(path.join(repoRoot(), "node_modules/socket.io-client/dist/socket.io.min.js"));
  pageServer = createServer((req, res) => {
    if (req.url === "/socket.io.min.js") res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
    else if ((req.url ?? "").startsWith("/?")) res.writeHead(200, { "content-type": "text/html" }).end(pageHtml());
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", resolve));
  pageOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  await startPageServer();
  redis = await startRedis();
  const prefix = uniquePrefix("cookieless");
  const env = { SOCKETIO_CORS_ORIGINS: pageOrigin, LOG_LEVEL: "warn" };
  nodes = await Promise.all(["node-1", "node-2", "node-3"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env })));
  nginx = await startNginx({ nodes: nodes.map((node) => ({ name: node.name, host: "127.0.0.1", port: node.port })) });
});

afterAll(async () => {
  for (const socket of sockets) socket.close();
  await nginx?.stop();
  await Promise.all(nodes.map((node) => node.stop()));
  await redis?.stop();
  await new Promise((resolve) => pageServer?.close(resolve));
});

describe("Socket.IO stickiness by session id, no cookie", () => {
  it("holds a long-polling session of socket.io-client in Node with default options over many polling cycles", async () => {
    const socket = io(nginx.url, { query: { token: token({ sub: "node-poller" }) }, transports: ["polling"] });
    sockets.push(socket);
    const log = watch(socket);
    const [welcome] = await eventually(async () => log.welcomes, (w) => w.length > 0);
    const sid = socket.io.engine.id;
    // The session id names the node that holds the session.
    expect(sid.startsWith(`${welcome!.node}.`)).toBe(true);
    let polls = 0;
    (socket.io.engine.transport as unknown as { on(event: "poll", listener: () => void): void }).on("poll", () => polls++);

    expect(await socket.emitWithAck("subscribe", { channel: "forecasts:ETH" })).toMatchObject({ ok: true });
    await publishOneByOne("forecasts:ETH", POLLING_ROUNDS, async (seq) => {
      await eventually(async () => log.messages.some((m) => sequenceOf(m) === seq), (found) => found);
      // Client → server requests (POST) ride the same session.
      if (seq % 5 === 0) expect(await socket.emitWithAck("ping", {})).toMatchObject({ ok: true });
    });

    expect(log.messages.map(sequenceOf)).toEqual(Array.from({ length: POLLING_ROUNDS }, (_, i) => i));
    expect(polls).toBeGreaterThanOrEqual(POLLING_ROUNDS);
    expect(log.troubles).toEqual([]);
    expect(log.welcomes).toHaveLength(1);
    expect(socket.io.engine.id).toBe(sid);
    expect(socket.io.engine.transport.name).toBe("polling");
  });

  it("upgrades a default socket.io-client session from polling to WebSocket on the same node", async () => {
    const socket = io(nginx.url, { query: { token: token({ sub: "node-upgrader" }) } });
    sockets.push(socket);
    const log = watch(socket);
    const [welcome] = await eventually(async () => log.welcomes, (w) => w.length > 0);
    const sid = socket.io.engine.id;
    await eventually(async () => socket.io.engine.transport.name, (name) => name === "websocket");
    expect(await socket.emitWithAck("subscribe", { channel: "forecasts:SOL" })).toMatchObject({ ok: true });
    await publishOneByOne("forecasts:SOL", 3, async (seq) => {
      await eventually(async () => log.messages.some((m) => sequenceOf(m) === seq), (found) => found);
    });
    expect(socket.io.engine.id).toBe(sid);
    expect(sid.startsWith(`${welcome!.node}.`)).toBe(true);
    expect(log.troubles).toEqual([]);
    expect(log.welcomes).toHaveLength(1);
  });

  it("answers a forged or unknown session id with engine.io's refusal, wherever it lands", async () => {
    for (const sid of ["node-2.AAAAAAAAAAAAAAAAAAAA", "node-9.AAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAA", "node-1.", ".node-1"]) {
      const res = await fetch(`${nginx.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`);
      expect(res.status, sid).toBe(400);
      expect(await res.json(), sid).toEqual({ code: 1, message: "Session ID unknown" });
    }
  });

  it("holds a cross-origin page's long-polling session without credentials", async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: run scripts/ensure-system.sh (Debian package chromium)`);
    const userDataDir = await mkdtemp(path.join(os.tmpdir(), "gw-chromium-"));
    let context: BrowserContext | undefined;
    try {
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
      const query = new URLSearchParams({ gateway: nginx.url, token: token({ sub: "page-poller" }), channel: "forecasts:ADA" });
      await page.goto(`${pageOrigin}/?${query.toString()}`);
      expect(new URL(nginx.url).origin).not.toBe(pageOrigin);

      type PageWindow = { session: { socket: Socket; log: SessionLog & { subscribed: { ok: boolean } | null } } };
      await page.waitForFunction(() => (window as unknown as PageWindow).session.log.subscribed !== null, undefined, { timeout: 15_000 });
      const start = await page.evaluate(() => {
        const { socket, log } = (window as unknown as PageWindow).session;
        return { sid: socket.io.engine.id, node: log.welcomes[0]?.node ?? "", subscribed: log.subscribed };
      });
      expect(start.subscribed).toMatchObject({ ok: true });
      expect(start.sid.startsWith(`${start.node}.`)).toBe(true);

      await publishOneByOne("forecasts:ADA", POLLING_ROUNDS, async (seq) => {
        await page.waitForFunction((n) => (window as unknown as PageWindow).session.log.messages.some((m) => (m.data as { seq?: number }).seq === n), seq, { timeout: 10_000 });
      });

      const end = await page.evaluate(() => {
        const { socket, log } = (window as unknown as PageWindow).session;
        return { sid: socket.io.engine.id, transport: socket.io.engine.transport.name, welcomes: log.welcomes.length, troubles: log.troubles, seqs: log.messages.map((m) => (m.data as { seq?: number }).seq) };
      });
      expect(end).toEqual({ sid: start.sid, transport: "polling", welcomes: 1, troubles: [], seqs: Array.from({ length: POLLING_ROUNDS }, (_, i) => i) });
      // Without credentials the browser kept no gateway cookie: the session id alone routed it.
      expect(await context.cookies(nginx.url)).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await context?.close();
      await rm(userDataDir, { recursive: true, force: true });
    }
  });
});
