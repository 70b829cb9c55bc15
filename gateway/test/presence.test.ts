/**
 * Presence against three real nodes: counts stay right while raw and
 * Socket.IO clients come and go on every node, and after one node is
 * SIGKILLed its users drop out within seconds; join and leave notices once
 * per user for the whole cluster; bounded answers; clear refusals.
 */

import { io, type Socket } from "socket.io-client";
import WebSocket from "ws";
import { connect as sdkConnect, GatewayError } from "../../shared/src/client/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PresenceResult } from "../../shared/src/protocol.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { PRESENCE_LEASE_MS } from "../src/cluster/presence.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { apiCall } from "./support/server-api.js";
import { token } from "./support/tokens.js";
import { connect, type TestClient } from "./support/ws-client.js";

const MAX_MEMBERS = 8;
let redis: RedisHandle;
let nodes: GatewayNode[] = [];
const sockets: Socket[] = [];

/** One open connection of the model: who, where, and how to close it. */
interface Held {
  readonly user: string;
  readonly node: number;
  close(): Promise<void>;
}

beforeAll(async () => {
  redis = await startRedis();
  const prefix = uniquePrefix("presence");
  const env = { PRESENCE_NAMESPACES: "lobby,race", PRESENCE_JOIN_LEAVE: "lobby", PRESENCE_MAX_MEMBERS: String(MAX_MEMBERS) };
  nodes = await Promise.all(["node-1", "node-2", "node-3"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env })));
});

afterAll(async () => {
  for (const socket of sockets) socket.close();
  await Promise.all(nodes.map((node) => node.stop()));
  await redis?.stop();
});

async function rawOn(node: number, user: string, channel: string): Promise<Held & { client: TestClient }> {
  const client = await connect(nodes[node]!.wsUrl, { token: token({ sub: user, channels: ["lobby:*"] }) });
  await client.subscribe(channel);
  return { user, node, client, close: async () => void (await client.close()) };
}

async function socketIoOn(node: number, user: string, channel: string): Promise<Held> {
  const socket = io(nodes[node]!.httpUrl, { extraHeaders: { authorization: `Bearer ${token({ sub: user })}` }, transports: ["websocket"], reconnection: false });
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once("welcome", () => resolve());
    socket.once("connect_error", reject);
  });
  expect(await socket.emitWithAck("subscribe", { channel })).toMatchObject({ ok: true });
  return {
    user,
    node,
    close: async () => {
      const gone = new Promise<void>((resolve) => socket.once("disconnect", () => resolve()));
      socket.close();
      await gone;
    },
  };
}

/** What presence must say about the connections held. */
function expected(held: readonly Held[]): { users: number; connections: number; byUser: Record<string, number> } {
  const byUser: Record<string, number> = {};
  for (const { user } of held) byUser[user] = (byUser[user] ?? 0) + 1;
  return { users: Object.keys(byUser).length, connections: held.length, byUser };
}

async function presence(node: GatewayNode, channel: string, stats = false): Promise<PresenceResult> {
  const answer = await apiCall(node.httpUrl, "GET", `/v1/presence?channel=${encodeURIComponent(channel)}${stats ? "&stats=1" : ""}`);
  if (answer.status !== 200) throw new Error(`presence answered ${answer.status}: ${JSON.stringify(answer.json)}`);
  return answer.json as PresenceResult;
}

/** Waits until every listed node reports exactly the model, members included. */
async function agrees(channel: string, held: readonly Held[], onNodes: readonly GatewayNode[]): Promise<void> {
  const want = expected(held);
  for (const node of onNodes) {
    await eventually(
      () => presence(node, channel),
      (got) => got.users === want.users && got.connections === want.connections && JSON.stringify(Object.fromEntries((got.members ?? []).map((m) => [m.user, m.connections]))) === JSON.stringify(Object.fromEntries(Object.entries(want.byUser).sort())),
      15_000,
    );
  }
}

describe("presence", () => {
  it("stays right while clients come and go on three nodes, and when one node is SIGKILLed", async () => {
    const channel = "race";
    const held: Held[] = [];
    // Round 1: users spread over the nodes, some on two nodes at once, both transports.
    for (const [i, user] of ["ann", "ben", "cat"].entries()) held.push(await rawOn(i, user, channel));
    held.push(await socketIoOn(1, "ann", channel), await rawOn(2, "ben", channel), await socketIoOn(2, "dan", channel));
    await agrees(channel, held, nodes);
    const stats = await presence(nodes[0]!, channel, true);
    expect(stats).toEqual({ channel, users: 4, connections: 6 });

    // Rounds of churn: some leave, others come, on every node.
    for (let round = 0; round < 3; round++) {
      const leaving = held.splice(round, 2);
      await Promise.all(leaving.map((h) => h.close()));
      held.push(await rawOn(round % 3, `new-${round}`, channel), await socketIoOn((round + 1) % 3, "ann", channel));
      await agrees(channel, held, nodes);
    }

    // A client asks too, on either transport, and gets the same answer.
    const asking = held.find((h): h is Held & { client: TestClient } => "client" in h)!;
    const reply = await asking.client.request({ type: "presence", channel });
    expect(reply).toMatchObject({ ok: true, ...(await presence(nodes[0]!, channel)) });

    // node-3 dies without a goodbye: its connections drop out within the lease.
    const killedAt = Date.now();
    await nodes[2]!.proc.kill9();
    const survivors = held.filter((h) => h.node !== 2);
    await agrees(channel, survivors, nodes.slice(0, 2));
    const took = Date.now() - killedAt;
    process.stdout.write(`presence: node-3's connections dropped out ${took} ms after SIGKILL (lease ${PRESENCE_LEASE_MS} ms)\n`);
    expect(took).toBeLessThan(PRESENCE_LEASE_MS * 3);

    // And the survivors go on counting comings and goings.
    await survivors.pop()!.close();
    survivors.push(await rawOn(0, "late", channel));
    await agrees(channel, survivors, nodes.slice(0, 2));
    await Promise.all(survivors.map((h) => h.close().catch(() => undefined)));
  });
});

describe("presence notices and limits", () => {
  it("announces a user's first connection and last departure once for the cluster", async () => {
    const channel = "lobby:notices";
    const watcher = await rawOn(0, "watcher", channel);
    const joins = (user: string): number => watcher.client.messages(channel).filter((m) => m.event === "presence_join" && (m.data as { user: string }).user === user).length;
    const leaves = (user: string): number => watcher.client.messages(channel).filter((m) => m.event === "presence_leave" && (m.data as { user: string }).user === user).length;

    const first = await rawOn(1, "eve", channel);
    await watcher.client.waitForMessage((m) => m.event === "presence_join" && (m.data as { user: string }).user === "eve");
    const second = await rawOn(0, "eve", channel);
    await agrees(channel, [watcher, first, second], nodes.slice(0, 2));
    await first.close();
    await agrees(channel, [watcher, second], nodes.slice(0, 2));
    expect([joins("eve"), leaves("eve")]).toEqual([1, 0]);
    await second.close();
    await watcher.client.waitForMessage((m) => m.event === "presence_leave" && (m.data as { user: string }).user === "eve");
    expect([joins("eve"), leaves("eve")]).toEqual([1, 1]);
    await watcher.close();
  });

  it("lists at most PRESENCE_MAX_MEMBERS users, counting everyone", async () => {
    const channel = "lobby:crowd";
    const held = await Promise.all(Array.from({ length: MAX_MEMBERS + 2 }, (_, i) => rawOn(i % 2, `crowd-${i}`, channel)));
    const full = await eventually(
      () => presence(nodes[1]!, channel),
      (got) => got.users === MAX_MEMBERS + 2,
    );
    expect(full).toMatchObject({ users: MAX_MEMBERS + 2, connections: MAX_MEMBERS + 2, truncated: true });
    expect(full.members).toHaveLength(MAX_MEMBERS);
    await Promise.all(held.map((h) => h.close()));
  });

  it("is one call in the SDK", async () => {
    const client = sdkConnect(nodes[0]!.wsUrl, { token: token({ sub: "sdk-viewer" }) }, { WebSocket });
    try {
      await client.subscribe("race", {}).ready();
      const everyone = await eventually(
        () => client.presence("race"),
        (got) => got.members?.some((member) => member.user === "sdk-viewer") === true,
      );
      expect(everyone.users).toBeGreaterThanOrEqual(1);
      const stats = await client.presence("race", true);
      expect(stats).toMatchObject({ channel: "race", users: everyone.users, connections: everyone.connections });
      expect(stats.members).toBeUndefined();
      await client.subscribe("forecasts", {}).ready();
      const refused = await client.presence("forecasts").catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(GatewayError);
      expect((refused as GatewayError).code).toBe("presence_disabled");
    } finally {
      await client.close();
    }
  });

  it("refuses channels without presence, and clients not subscribed", async () => {
    expect(await apiCall(nodes[0]!.httpUrl, "GET", "/v1/presence?channel=forecasts")).toMatchObject({ status: 400, json: { error: { code: "presence_disabled" } } });
    expect(await apiCall(nodes[0]!.httpUrl, "GET", "/v1/presence?channel=")).toMatchObject({ status: 400, json: { error: { code: "bad_request" } } });
    expect(await apiCall(nodes[0]!.httpUrl, "GET", "/v1/presence?channel=race&stats=maybe")).toMatchObject({ status: 400 });
    const client = await connect(nodes[0]!.wsUrl, { token: token({ sub: "curious" }) });
    expect(await client.request({ type: "presence", channel: "race" })).toMatchObject({ ok: false, error: { code: "not_subscribed" } });
    await client.subscribe("forecasts");
    expect(await client.request({ type: "presence", channel: "forecasts" })).toMatchObject({ ok: false, error: { code: "presence_disabled" } });
    await client.close();
  });
});
