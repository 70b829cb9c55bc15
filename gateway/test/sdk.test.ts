/**
 * The client SDK against a real cluster: three gateway processes with the
 * round clock on, Postgres, Redis and NGINX in front, exactly as `npm start`
 * runs them. Typed events and the snapshot, personal feeds, a command round
 * trip, spread reconnects after a SIGKILL, the 1012 fast path on SIGTERM,
 * token refresh on the open socket, and resume: every offset exactly once
 * through a SIGKILL, recovered: false with the race snapshot once a position
 * left history, and a resubscribe after a gap frame.
 */

import { Redis } from "ioredis";
import WebSocket from "ws";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { connect, type GatewayClient } from "../../shared/src/client/index.js";
import type { ChannelPosition, ClientEvents, ClientOptions, DeliveryMeta, ResumedInfo, TokenSource, WebSocketConstructor } from "../../shared/src/client/index.js";
import type { TimerUpdate } from "../../shared/src/race-events.js";
import { startNginx, type NginxHandle } from "../../scripts/lib/nginx.js";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { RedisKeyspace } from "../src/broker/redis-keys.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { publish } from "./support/ws-client.js";

let redis: RedisHandle;
let postgres: PostgresHandle;
let nginx: NginxHandle;
let nodes: GatewayNode[] = [];
let wsUrl: string;
const clients: GatewayClient[] = [];
const prefix = uniquePrefix("sdk");

function clusterEnv(): Record<string, string> {
  return {
    CLOCK_ENABLED: "true",
    DATABASE_URL: postgres.url,
    PG_SCHEMA: `sdk_${process.pid}`,
    ROUND_WAIT_MS: "3000",
    ROUND_RACE_MS: "1000",
    ROUND_FINISH_MS: "500",
    TIMER_UPDATE_INTERVAL_MS: "100",
    RACE_SYNC_INTERVAL_MS: "200",
    CLOCK_LEASE_TTL_MS: "1000",
    // Expiry exactly at `exp`, so the refresh test proves the refresh, not the tolerance.
    JWT_CLOCK_TOLERANCE_S: "0",
    // Race history of half a second (ticks every 100 ms), so a client away for longer cannot be
    // recovered; room for everything the resume test publishes on the other channels.
    CHANNEL_HISTORY: "race=5/30,forecasts=1000/300,user=1000/900,*=100/300",
    LOG_LEVEL: "warn",
  };
}

interface Recorded {
  readonly client: GatewayClient;
  readonly events: Array<{ readonly name: keyof ClientEvents; readonly at: number; readonly value: unknown }>;
  of<K extends keyof ClientEvents>(name: K): Array<{ at: number; value: ClientEvents[K] }>;
}

const EVENT_NAMES: ReadonlyArray<keyof ClientEvents> = ["connecting", "connected", "disconnected", "reconnecting", "resumed", "refreshed", "error"];

function open(auth: TokenSource, options: ClientOptions = {}): Recorded {
  const client = connect(wsUrl, auth, { WebSocket, ...options });
  clients.push(client);
  const events: Recorded["events"] = [];
  for (const name of EVENT_NAMES) client.on(name, (value) => events.push({ name, at: performance.now(), value }));
  return {
    client,
    events,
    of: <K extends keyof ClientEvents>(name: K) => events.filter((e) => e.name === name).map((e) => ({ at: e.at, value: e.value as ClientEvents[K] })),
  };
}

/** Resolves once every client fired `event` at least `count` times in total. */
function all(recorded: readonly Recorded[], event: keyof ClientEvents, count: number): Promise<void> {
  return Promise.all(
    recorded.map(
      (r) =>
        new Promise<void>((resolve) => {
          const check = (): boolean => r.events.filter((e) => e.name === event).length >= count;
          if (check()) return resolve();
          const off = r.client.on(event, () => {
            if (check()) {
              off();
              resolve();
            }
          });
        }),
    ),
  ).then(() => undefined);
}

function nodeNamed(name: string): GatewayNode {
  const node = nodes.find((n) => n.name === name);
  if (node === undefined) throw new Error(`no node ${name}`);
  return node;
}

/** The node serving the most of these clients, and those clients. */
function busiest(recorded: readonly Recorded[]): { node: GatewayNode; on: Recorded[] } {
  const counts = new Map<string, Recorded[]>();
  for (const r of recorded) {
    const name = r.client.node;
    if (name !== null) counts.set(name, [...(counts.get(name) ?? []), r]);
  }
  const [name, on] = [...counts.entries()].sort((a, b) => b[1].length - a[1].length)[0]!;
  return { node: nodeNamed(name), on };
}

beforeAll(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres({ fast: true })]);
  nodes = await Promise.all(["sdk-1", "sdk-2", "sdk-3"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env: clusterEnv() })));
  nginx = await startNginx({ nodes: nodes.map((n) => ({ name: n.name, host: "127.0.0.1", port: n.port })) });
  wsUrl = `ws://127.0.0.1:${nginx.port}/ws`;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await nginx?.stop();
  await Promise.all(nodes.map((n) => (n.proc.isRunning() ? n.stop() : Promise.resolve(null))));
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

describe("client SDK against a cluster", () => {
  it("connects through NGINX and delivers typed race events, the snapshot first", async () => {
    const screen = open({ token: token({ sub: "sdk-screen" }) });
    const ticks: Array<{ data: TimerUpdate; meta: DeliveryMeta }> = [];
    const firstLive = new Promise<void>((resolve) => {
      screen.client.subscribe("race", {
        timer_update: (data, meta) => {
          ticks.push({ data, meta });
          if (!meta.fromSnapshot) resolve();
        },
      });
    });
    const connected = await screen.client.once("connected");
    expect(nodes.map((n) => n.name)).toContain(connected.node);
    await firstLive;
    const live = ticks.find((t) => !t.meta.fromSnapshot)!;
    expect(live.meta).toMatchObject({ channel: "race", event: "timer_update", fromSnapshot: false });
    expect(live.meta.offset).toBeGreaterThan(0);
    expect(live.data.timer.timeLeft).toBeLessThanOrEqual(3000);
    expect(live.data.currentScreen).toBe("game_screen");
    // When the round was waiting at subscribe time, the snapshot came before any live tick.
    const snapshotIndex = ticks.findIndex((t) => t.meta.fromSnapshot);
    if (snapshotIndex !== -1) expect(snapshotIndex).toBe(0);
  });

  it("delivers portfolio_update on the personal channel without an explicit subscribe", async () => {
    const user = open({ token: token({ sub: "sdk-portfolio" }) });
    const received = new Promise<number | undefined>((resolve) => {
      user.client.subscribe("user:sdk-portfolio", { portfolio_update: (data) => resolve(data.cash) });
    });
    await user.client.once("connected");
    const res = await publish(nodes[0]!.httpUrl, TEST_PUBLISH_KEY, { channel: "user:sdk-portfolio", event: "portfolio_update", data: { cash: 4200, positions: [] } });
    expect(res.status).toBe(200);
    expect(await received).toBe(4200);
  });

  it("round-trips a command and maps a refusal to a typed error", async () => {
    const bettor = open({ token: token({ sub: "sdk-bettor" }) });
    // A tick with time left to bet in, on a round the node knows.
    const openRound = await new Promise<TimerUpdate>((resolve) => {
      bettor.client.subscribe("race", {
        timer_update: (data) => {
          if (data.timer.timeLeft > 1500) resolve(data);
        },
      });
    });
    const data = { roundId: openRound.roundId, selection: 1, amount: 100, odds: openRound.odds[0] as number, idempotencyKey: `sdk-${process.pid}-bet-1` };
    const placed = await bettor.client.command("place_bet", data);
    expect(placed.result.bet).toMatchObject({ roundId: openRound.roundId, selection: 1, amount: 100, odds: data.odds, duplicate: false });
    const again = await bettor.client.command("place_bet", data);
    expect(again.result.bet).toMatchObject({ betId: placed.result.bet.betId, duplicate: true });
    await expect(bettor.client.command("place_bet", { ...data, amount: -5, idempotencyKey: `sdk-${process.pid}-bet-2` })).rejects.toMatchObject({
      name: "GatewayError",
      code: "invalid_command",
    });
    await expect(bettor.client.command("no_such_command", {})).rejects.toMatchObject({ code: "unknown_command" });
  });

  it("spreads reconnects over the backoff window when a node is SIGKILLed", async () => {
    const WINDOW_MS = 2000;
    const fleet = Array.from({ length: 150 }, (_, i) => open({ token: token({ sub: `fleet-${i}` }) }, { initialDelayMs: WINDOW_MS, stableAfterMs: 0 }));
    await all(fleet, "connected", 1);
    const { node, on } = busiest(fleet);
    expect(on.length).toBeGreaterThanOrEqual(40);
    const killedAt = performance.now();
    await node.proc.kill9();
    await all(on, "connected", 2);

    const delays = on.map((r) => r.of("reconnecting")[0]!.value.delayMs);
    const reconnectedAfter = on.map((r) => r.of("connected")[1]!.at - killedAt);
    for (const r of on) {
      expect(r.of("disconnected")[0]!.value).toMatchObject({ code: 1006, willReconnect: true });
      expect(r.of("reconnecting")[0]!.value).toMatchObject({ attempt: 1, strategy: "backoff" });
      expect(r.client.node).not.toBe(node.name);
    }
    // Full jitter: chosen delays cover the window instead of bunching at one point…
    expect(Math.max(...delays)).toBeLessThan(WINDOW_MS);
    expect(Math.max(...delays) - Math.min(...delays)).toBeGreaterThan(WINDOW_MS * 0.6);
    // …and so do the actual reconnects the cluster saw: no 50 ms slice takes more than a fifth.
    const spread = Math.max(...reconnectedAfter) - Math.min(...reconnectedAfter);
    expect(spread).toBeGreaterThan(WINDOW_MS * 0.6);
    const slices = new Map<number, number>();
    for (const t of reconnectedAfter) slices.set(Math.floor(t / 50), (slices.get(Math.floor(t / 50)) ?? 0) + 1);
    expect(Math.max(...slices.values())).toBeLessThanOrEqual(Math.ceil(on.length / 5));
    await Promise.all(fleet.map((r) => r.client.close()));
  });

  it("reconnects at once, jittered, when its node drains with 1012", async () => {
    const JITTER_MS = 1000;
    const fleet = Array.from({ length: 60 }, (_, i) => open({ token: token({ sub: `drain-${i}` }) }, { initialDelayMs: 30_000, drainJitterMs: JITTER_MS, stableAfterMs: 0 }));
    await all(fleet, "connected", 1);
    const { node, on } = busiest(fleet);
    expect(on.length).toBeGreaterThanOrEqual(20);
    await node.stop("SIGTERM");
    await all(on, "connected", 2);

    const delays = on.map((r) => r.of("reconnecting")[0]!.value);
    for (const d of delays) expect(d).toMatchObject({ code: 1012, strategy: "drain", attempt: 1 });
    expect(Math.max(...delays.map((d) => d.delayMs))).toBeLessThan(JITTER_MS);
    expect(Math.max(...delays.map((d) => d.delayMs)) - Math.min(...delays.map((d) => d.delayMs))).toBeGreaterThan(JITTER_MS / 2);
    // Back well inside the jitter window plus a connect, far below the 30 s backoff ceiling.
    for (const r of on) {
      const gone = r.of("disconnected")[0]!.at;
      expect(r.of("connected")[1]!.at - gone).toBeLessThan(JITTER_MS + 1500);
      expect(r.client.node).not.toBe(node.name);
    }
    await Promise.all(fleet.map((r) => r.client.close()));
  });

  it("refreshes a short-lived token on the open socket, past the first token's expiry", async () => {
    let issued = 0;
    const holder = open({
      getToken: () => {
        issued++;
        return Promise.resolve(token({ sub: "sdk-refresh" }, { expiresIn: 2 }));
      },
    });
    const first = (await holder.client.once("connected")).expiresAt!;
    await all([holder], "refreshed", 3);
    // Past the first token's expiry (no clock tolerance on these nodes) and still the same socket.
    expect(Date.now()).toBeGreaterThan(first);
    expect(holder.of("connected")).toHaveLength(1);
    expect(holder.of("disconnected")).toEqual([]);
    expect(issued).toBe(4);
    const got = new Promise<number | undefined>((resolve) => holder.client.subscribe("user:sdk-refresh", { portfolio_update: (data) => resolve(data.cash) }));
    const alive = nodes.find((n) => n.proc.isRunning())!;
    await publish(alive.httpUrl, TEST_PUBLISH_KEY, { channel: "user:sdk-refresh", event: "portfolio_update", data: { cash: 1 } });
    expect(await got).toBe(1);
  });
});

/** Starts every node an earlier test killed or drained again, on its port, so NGINX finds it. */
async function reviveNodes(): Promise<void> {
  nodes = await Promise.all(
    nodes.map(async (n) => (n.proc.isRunning() ? n : startGatewayNode({ name: n.name, port: n.port, redisUrl: redis.url, redisPrefix: prefix, env: clusterEnv() }))),
  );
}

/** A `ws` constructor that remembers its latest socket, so a test can cut it like a network loss (1006, no close frame). */
function cuttable(): { readonly WebSocket: WebSocketConstructor; cut(): void } {
  const opened: WebSocket[] = [];
  class Tracked extends WebSocket {
    constructor(url: string, protocols: string[]) {
      super(url, protocols);
      opened.push(this);
    }
  }
  return { WebSocket: Tracked, cut: () => opened.at(-1)?.terminate() };
}

async function publishTo(node: GatewayNode, channel: string, data: unknown): Promise<ChannelPosition> {
  const res = await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel, event: "forecast_update", data });
  expect(res.status).toBe(200);
  const { offset, epoch } = res.json as ChannelPosition;
  return { offset, epoch };
}

function resumedOn(r: Recorded, channel: string): ResumedInfo[] {
  return r.of("resumed").map((e) => e.value).filter((info) => info.channel === channel);
}

describe("resume through failures", () => {
  let backend: Redis;
  beforeAll(() => {
    backend = new Redis(redis.url);
  });
  afterAll(() => backend?.disconnect());
  beforeEach(reviveNodes, 30_000);

  it("resumes a public and the personal channel on another node after a SIGKILL: every offset exactly once, in order", async () => {
    const sub = "sdk-resume";
    const channels = ["forecasts:sdk-resume", `user:${sub}`] as const;
    const r = open({ token: token({ sub }) }, { initialDelayMs: 500 });
    const received = new Map<string, number[]>(channels.map((c) => [c, []]));
    const published = new Map<string, number[]>(channels.map((c) => [c, []]));
    const record = (_event: string, _data: unknown, meta: DeliveryMeta): void => void received.get(meta.channel)?.push(meta.offset ?? -1);
    const ready = channels.map((c) => r.client.subscribe(c, { message: record }).ready());
    await Promise.all(ready);
    const victim = nodeNamed(r.client.node ?? "");
    const publisher = nodes.find((n) => n !== victim)!;

    let stop = false;
    const publishing = (async () => {
      // Bounded: 3000 publishes or 30 s. Paced (~150/s) so what the client misses stays well inside history.
      const deadline = Date.now() + 30_000;
      for (let i = 0; !stop && i < 3000 && Date.now() < deadline; i++) {
        const channel = channels[i % 2]!;
        published.get(channel)!.push((await publishTo(publisher, channel, { i })).offset);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await eventually(async () => received.get(channels[0])!.length, (n) => n >= 20);
    await victim.proc.kill9();
    await eventually(async () => r.of("resumed").length, (n) => n >= 2, 15_000);
    expect(r.client.node).not.toBe(victim.name);
    // Publishing goes on past the resume, then stops.
    const atResume = published.get(channels[0])!.length;
    await eventually(async () => published.get(channels[0])!.length, (n) => n >= atResume + 20);
    stop = true;
    await publishing;

    for (const channel of channels) {
      const sent = published.get(channel)!;
      await eventually(async () => received.get(channel)!.at(-1), (last) => last === sent.at(-1));
      // Nobody else publishes here: the offsets are consecutive, and each arrived once, in order.
      expect(sent).toEqual(Array.from({ length: sent.length }, (_, i) => sent[0]! + i));
      expect(received.get(channel)).toEqual(sent);
      expect(resumedOn(r, channel)).toEqual([{ channel, recovered: true, cause: "reconnect", since: expect.any(Object), position: expect.any(Object) }]);
    }
    expect(r.of("connected")).toHaveLength(2);
  }, 60_000);

  it("says recovered: false once its race position left history, and re-applies the race snapshot", async () => {
    const link = cuttable();
    // Back after 0.9 × 2 s = 1.8 s: more race ticks than the 5 the race history keeps.
    const r = open({ token: token({ sub: "sdk-too-old" }) }, { WebSocket: link.WebSocket, initialDelayMs: 2000, random: () => 0.9 });
    const seen: string[] = [];
    const live = new Promise<void>((resolve) => {
      r.client.subscribe("race", {
        message: (_event, _data, meta) => {
          seen.push(meta.fromSnapshot ? "snapshot" : `live:${meta.offset}`);
          if (!meta.fromSnapshot) resolve();
        },
        resumed: (info) => seen.push(`resumed:${info.recovered}`),
      });
    });
    await live;
    const before = r.client.position("race");
    link.cut();
    await eventually(async () => resumedOn(r, "race").length, (n) => n === 1, 10_000);
    const [resumed] = resumedOn(r, "race");
    expect(resumed).toMatchObject({ recovered: false, cause: "reconnect", since: before });
    // The snapshot reaches the handlers right after the resume, then live ticks go on from the new position.
    await eventually(async () => seen.length, (n) => n >= seen.indexOf("resumed:false") + 3);
    const after = seen.slice(seen.indexOf("resumed:false"));
    expect(after[1]).toBe("snapshot");
    expect(Number(after[2]?.split(":")[1])).toBeGreaterThan(resumed!.position!.offset);
    // Nothing was published to the personal channel meanwhile: it resumed recovered.
    expect(resumedOn(r, "user:sdk-too-old")).toMatchObject([{ recovered: true, cause: "reconnect" }]);
  }, 30_000);

  it.each([
    { sub: "sdk-gap-public", channel: "forecasts:sdk-gap" },
    { sub: "sdk-gap-personal", channel: "user:sdk-gap-personal" },
  ])("resubscribes $channel after a gap frame, on the same socket, and learns the lost message is gone", async ({ sub, channel }) => {
    const r = open({ token: token({ sub }) });
    const order: string[] = [];
    const subscription = r.client.subscribe(channel, {
      message: (_event, _data, meta) => order.push(String(meta.offset)),
      resumed: (info) => order.push(`resumed:${info.recovered}:${info.cause}`),
    });
    await subscription.ready();
    const publisher = nodes[0]!;
    const first = await publishTo(publisher, channel, 0);
    await eventually(async () => order.length, (n) => n === 1);
    const resumed = r.client.once("resumed");
    // A message whose offset was taken but that no node received and history never kept.
    await backend.hincrby(new RedisKeyspace(prefix).stateKey(channel), "offset", 1);
    const afterHole = await publishTo(publisher, channel, 2);
    expect(await resumed).toEqual({ channel, recovered: false, cause: "history_lost", since: first, position: afterHole });
    const next = await publishTo(publisher, channel, 3);
    await eventually(async () => order.at(-1), (last) => last === String(next.offset));
    expect(order).toEqual([String(first.offset), "resumed:false:history_lost", String(next.offset)]);
    expect(r.of("connected")).toHaveLength(1);
  });
});
