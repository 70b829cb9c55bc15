/**
 * History and continuity on real nodes and a real Redis: each node notices a
 * message it did not receive, replays it from history before anything later,
 * tells its subscribers when history no longer has it, and catches up after
 * its subscriber connection is cut. Idempotent publishes and GET /v1/history.
 */

import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GapFrame, MessageFrame } from "../../shared/src/protocol.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { RedisKeyspace } from "../src/broker/redis-keys.js";
import { encodeFrameHead, encodeFrameTail } from "../src/fanout/message-frame.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, publish, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let backend: Redis;
let prefix: string;
let nodes: GatewayNode[] = [];
const clients: TestClient[] = [];
let channelCounter = 0;

function node(i: number): GatewayNode {
  const found = nodes[i];
  if (found === undefined) throw new Error(`no node ${i}`);
  return found;
}

/** A channel no other test touches, with a subscriber on every node. */
async function freshChannel(): Promise<{ channel: string; watchers: TestClient[] }> {
  channelCounter++;
  const channel = `forecasts:h${channelCounter}`;
  const watchers: TestClient[] = [];
  for (const [i, n] of nodes.entries()) {
    const c = await connect(n.wsUrl, { token: token({ sub: `w${channelCounter}-${i}` }) });
    clients.push(c);
    await c.subscribe(channel);
    watchers.push(c);
  }
  return { channel, watchers };
}

async function publishSeq(channel: string, seq: number, extra: Record<string, unknown> = {}): Promise<{ offset: number; epoch: string; duplicate?: boolean }> {
  const res = await publish(node(seq % nodes.length).httpUrl, TEST_PUBLISH_KEY, { channel, event: "forecast_update", data: { seq }, ...extra });
  expect(res.status).toBe(200);
  return res.json as { offset: number; epoch: string; duplicate?: boolean };
}

/**
 * What a lost pub/sub message looks like from a node: the offset was taken
 * and the message is in history, but nobody received it.
 */
async function loseNextMessage(channel: string, seq: number, keepInHistory: boolean): Promise<number> {
  const state = new RedisKeyspace(prefix).stateKey(channel);
  const offset = await backend.hincrby(state, "offset", 1);
  const epoch = (await backend.hget(state, "epoch")) as string;
  if (keepInHistory) {
    const frame = encodeFrameHead(channel, "forecast_update", JSON.stringify({ seq })) + encodeFrameTail(offset, epoch, Date.now());
    await backend.xadd(new RedisKeyspace(prefix).historyKey(channel), `${offset}-0`, "f", frame);
  }
  return offset;
}

function seqs(client: TestClient, channel: string): number[] {
  return client.messages(channel).map((m) => (m.data as { seq: number }).seq);
}

async function total(name: string, labels: Record<string, string> = {}): Promise<number> {
  const values = await Promise.all(nodes.map((n) => metricValue(n.httpUrl, name, labels)));
  return values.reduce((sum, value) => sum + value, 0);
}

beforeAll(async () => {
  redis = await startRedis();
  backend = new Redis(redis.url);
  prefix = uniquePrefix("hist");
  nodes = await Promise.all(["node-1", "node-2"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env: { CHANNEL_HISTORY: "forecasts=50/300,*=100/300", IDEMPOTENCY_WINDOW_S: "60" } })));
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.stop()));
  backend?.disconnect();
  await redis?.stop();
});

describe("gap repair on every node", () => {
  it("replays a message the node never received from history, before the next one", async () => {
    const { channel, watchers } = await freshChannel();
    await publishSeq(channel, 0);
    const repairedBefore = await total("gateway_history_gaps_repaired_total", { namespace: "forecasts" });
    await loseNextMessage(channel, 1, true);
    await publishSeq(channel, 2);
    for (const w of watchers) {
      await w.waitForMessage((m) => m.channel === channel && (m.data as { seq: number }).seq === 2);
      expect(seqs(w, channel)).toEqual([0, 1, 2]);
      const offsets = w.messages(channel).map((m) => m.offset);
      expect(offsets).toEqual([offsets[0], (offsets[0] as number) + 1, (offsets[0] as number) + 2]);
    }
    expect(await total("gateway_history_gaps_repaired_total", { namespace: "forecasts" })).toBe(repairedBefore + nodes.length);
  });

  it("sends a gap frame when history no longer holds the missing message, then goes on", async () => {
    const { channel, watchers } = await freshChannel();
    const first = await publishSeq(channel, 0);
    const unrecoverableBefore = await total("gateway_history_gaps_unrecoverable_total", { namespace: "forecasts", reason: "history_lost" });
    await loseNextMessage(channel, 1, false);
    await publishSeq(channel, 2);
    for (const w of watchers) {
      const gap = (await w.waitFor((f) => f.type === "gap" && f.channel === channel)) as GapFrame;
      expect(gap).toEqual({ type: "gap", channel, offset: first.offset, epoch: first.epoch, reason: "history_lost" });
      await w.waitForMessage((m) => m.channel === channel && (m.data as { seq: number }).seq === 2);
      expect(seqs(w, channel)).toEqual([0, 2]);
      // The gap frame comes before the message after the hole.
      const order = w.frames.filter((f) => (f.type === "gap" || f.type === "message") && f.channel === channel).map((f) => f.type);
      expect(order).toEqual(["message", "gap", "message"]);
    }
    expect(await total("gateway_history_gaps_unrecoverable_total", { namespace: "forecasts", reason: "history_lost" })).toBe(unrecoverableBefore + nodes.length);
  });

  it("catches up after its subscriber connection is cut, even when nothing is published after the loss", async () => {
    const { channel, watchers } = await freshChannel();
    await publishSeq(channel, 0);
    // A message none of the nodes received, and then nothing more on the
    // channel: only comparing with Redis after the reconnect can find it.
    await loseNextMessage(channel, 1, true);
    await backend.client("KILL", "TYPE", "pubsub");
    for (const w of watchers) {
      await w.waitForMessage((m) => m.channel === channel && (m.data as { seq: number }).seq === 1, 10_000);
      expect(seqs(w, channel)).toEqual([0, 1]);
    }
  });

  it("drops a repeated delivery instead of forwarding it twice", async () => {
    const { channel, watchers } = await freshChannel();
    const first = await publishSeq(channel, 0);
    const dropsBefore = await total("gateway_history_duplicates_dropped_total", { namespace: "forecasts" });
    const frame = encodeFrameHead(channel, "forecast_update", JSON.stringify({ seq: 0 })) + encodeFrameTail(first.offset, first.epoch, Date.now());
    await backend.publish(new RedisKeyspace(prefix).busChannel(channel), frame);
    await publishSeq(channel, 1);
    for (const w of watchers) {
      await w.waitForMessage((m) => m.channel === channel && (m.data as { seq: number }).seq === 1);
      expect(seqs(w, channel)).toEqual([0, 1]);
    }
    expect(await total("gateway_history_duplicates_dropped_total", { namespace: "forecasts" })).toBe(dropsBefore + nodes.length);
  });
});

describe("idempotent publishes", () => {
  it("publishes a repeated idempotencyKey once and answers the first offset with duplicate: true", async () => {
    const { channel, watchers } = await freshChannel();
    const first = await publishSeq(channel, 0, { idempotencyKey: "order-17" });
    expect(first.duplicate).toBeUndefined();
    const again = await publishSeq(channel, 1, { idempotencyKey: "order-17" });
    expect(again).toEqual({ offset: first.offset, epoch: first.epoch, duplicate: true });
    await publishSeq(channel, 2);
    for (const w of watchers) {
      await w.waitForMessage((m) => m.channel === channel && (m.data as { seq: number }).seq === 2);
      expect(seqs(w, channel)).toEqual([0, 2]);
    }
  });

  it("applies keys per message in a batch, on any node", async () => {
    const { channel } = await freshChannel();
    const body = (keys: string[]): unknown => ({ messages: keys.map((idempotencyKey, seq) => ({ channel, event: "forecast_update", data: { seq }, idempotencyKey })) });
    const first = await publish(node(0).httpUrl, TEST_PUBLISH_KEY, body(["a", "b"]));
    const second = await publish(node(1).httpUrl, TEST_PUBLISH_KEY, body(["b", "c"]));
    const [a, b] = (first.json as { results: Array<{ offset: number; duplicate?: boolean }> }).results;
    const [b2, c] = (second.json as { results: Array<{ offset: number; duplicate?: boolean }> }).results;
    expect(b2).toMatchObject({ offset: b?.offset, duplicate: true });
    expect(c?.offset).toBe((b?.offset ?? 0) + 1);
    expect(a?.duplicate).toBeUndefined();
  });

  it("refuses a malformed idempotencyKey with 400", async () => {
    for (const idempotencyKey of ["", "has space", "x".repeat(129), 42]) {
      const res = await publish(node(0).httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts", event: "x", data: 1, idempotencyKey });
      expect(res.status).toBe(400);
      expect((res.json as { error: { message: string } }).error.message).toMatch(/idempotencyKey/);
    }
  });
});

describe("GET /v1/history", () => {
  async function history(query: string, key = TEST_PUBLISH_KEY): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(`${node(1).httpUrl}/v1/history?${query}`, { headers: { authorization: `Bearer ${key}` } });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  it("returns the retained messages after `since`, as delivered, with the position", async () => {
    const { channel, watchers } = await freshChannel();
    const outcomes = [];
    for (let seq = 0; seq < 5; seq++) outcomes.push(await publishSeq(channel, seq));
    const last = outcomes[4] as { offset: number; epoch: string };
    const res = await history(`channel=${encodeURIComponent(channel)}&since=${last.offset - 3}&limit=2`);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ channel, offset: last.offset, epoch: last.epoch, complete: true });
    const messages = res.json["messages"] as MessageFrame[];
    expect(messages.map((m) => (m.data as { seq: number }).seq)).toEqual([2, 3]);
    // The same frames the clients got.
    await watchers[0]?.waitForMessage((m) => m.channel === channel && (m.data as { seq: number }).seq === 4);
    expect(messages.map((m) => JSON.stringify(m))).toEqual(watchers[0]?.rawMessages.filter((raw) => raw.includes(`"${channel}"`)).slice(2, 4));
  });

  it("says complete: false when messages after `since` have left history", async () => {
    const { channel } = await freshChannel();
    for (let seq = 0; seq < 60; seq++) await publishSeq(channel, seq);
    const res = await history(`channel=${encodeURIComponent(channel)}&since=0&limit=1000`);
    expect(res.json).toMatchObject({ complete: false, offset: 60 });
    expect((res.json["messages"] as MessageFrame[]).map((m) => m.offset)).toEqual(Array.from({ length: 50 }, (_, i) => 11 + i));
  });

  it("refuses a missing key, a bad channel, since or limit", async () => {
    expect((await history("channel=race", "wrong-key-0123456789")).status).toBe(401);
    for (const query of ["channel=has%20space", "", "channel=race&since=-1", "channel=race&since=abc", "channel=race&limit=1001"]) {
      const res = await history(query);
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ error: { code: "bad_request" } });
    }
  });
});

describe("state Redis holds under another type", () => {
  it("replaces a foreign-typed channel key with a new epoch instead of failing every publish", async () => {
    const { channel, watchers } = await freshChannel();
    const first = await publishSeq(channel, 0);
    await backend.set(new RedisKeyspace(prefix).stateKey(channel), "not a hash");
    const second = await publishSeq(channel, 1);
    expect(second.epoch).not.toBe(first.epoch);
    expect(second.offset).toBe(1);
    for (const w of watchers) {
      await w.waitFor((f) => f.type === "gap" && f.channel === channel && f.reason === "epoch_changed");
      await w.waitForMessage((m) => m.channel === channel && (m.data as { seq: number }).seq === 1);
    }
    await eventually(async () => (await backend.type(new RedisKeyspace(prefix).stateKey(channel))) === "hash", (ok) => ok);
  });
});
