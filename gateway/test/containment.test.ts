/**
 * One bad message must not stop a node, let alone all of them: every node
 * receives every broadcast. Three real nodes with raw and Socket.IO
 * subscribers on each; hostile payloads through the publish API, and garbage
 * written straight into the nodes' Redis pub/sub channel, as a buggy or
 * rogue publisher would. After each, every node is up and the next message
 * reaches every client.
 */

import { Redis } from "ioredis";
import net from "node:net";
import { io, type Socket } from "socket.io-client";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MessageFrame } from "../../shared/src/protocol.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { RedisKeyspace } from "../src/broker/redis-keys.js";
import { encodeFrameHead, encodeFrameTail } from "../src/fanout/message-frame.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, publish, type TestClient } from "./support/ws-client.js";

const CHANNEL = "forecasts:deep";

let redis: RedisHandle;
let injector: Redis;
let prefix: string;
let nodes: GatewayNode[] = [];
const raws: TestClient[] = [];
const sockets: Array<{ socket: Socket; messages: MessageFrame[] }> = [];
let marker = 0;

/** `{"a":{"a":…1…}}`, `levels` objects deep, built as text: JSON.stringify would overflow first. */
function nested(levels: number): string {
  return '{"a":'.repeat(levels) + "1" + "}".repeat(levels);
}

async function ioSubscriber(node: GatewayNode, sub: string): Promise<{ socket: Socket; messages: MessageFrame[] }> {
  const socket = io(node.httpUrl, { extraHeaders: { authorization: `Bearer ${token({ sub })}` }, transports: ["websocket"], reconnection: false, timeout: 5000 });
  const messages: MessageFrame[] = [];
  socket.on("message", (frame: MessageFrame) => messages.push(frame));
  await new Promise<void>((resolve, reject) => {
    socket.once("welcome", () => resolve());
    socket.once("connect_error", reject);
  });
  const answer = (await socket.emitWithAck("subscribe", { channel: CHANNEL })) as { ok: boolean };
  expect(answer.ok).toBe(true);
  return { socket, messages };
}

/** Publishes a fresh marker and waits until every raw and Socket.IO subscriber on every node has it. */
async function everyoneReceivesTheNextMessage(): Promise<void> {
  marker++;
  const sent = marker;
  const res = await publish(nodes[sent % nodes.length]!.httpUrl, TEST_PUBLISH_KEY, { channel: CHANNEL, event: "forecast_update", data: { marker: sent } });
  expect(res.status).toBe(200);
  const isMarker = (frame: MessageFrame): boolean => (frame.data as { marker?: number } | null)?.marker === sent;
  await Promise.all(raws.map((client) => client.waitForMessage(isMarker, 10_000)));
  await Promise.all(sockets.map(({ messages }) => eventually(async () => messages.some(isMarker), (seen) => seen, 10_000)));
}

async function everyNodeIsUp(): Promise<void> {
  for (const node of nodes) {
    const res = await fetch(`${node.httpUrl}/healthz`);
    expect(res.status).toBe(200);
    expect(node.proc.isRunning()).toBe(true);
  }
}

async function sumOverNodes(name: string, labels: Record<string, string>): Promise<number[]> {
  return Promise.all(nodes.map((node) => metricValue(node.httpUrl, name, labels)));
}

beforeAll(async () => {
  redis = await startRedis();
  injector = new Redis(redis.url);
  prefix = uniquePrefix("contain");
  nodes = await Promise.all(["node-1", "node-2", "node-3"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix })));
  for (const [i, node] of nodes.entries()) {
    const raw = await connect(node.wsUrl, { token: token({ sub: `raw-${i}` }) });
    raws.push(raw);
    await raw.subscribe(CHANNEL);
    sockets.push(await ioSubscriber(node, `sio-${i}`));
  }
  await everyoneReceivesTheNextMessage();
});

afterAll(async () => {
  for (const { socket } of sockets) socket.close();
  await Promise.all(raws.map((client) => client.close()));
  await Promise.all(nodes.map((node) => node.stop()));
  injector?.disconnect();
  await redis?.stop();
});

describe("containment of hostile payloads", () => {
  for (const levels of [4109, 100_000]) {
    it(`answers 400 to a publish nested ${levels} levels deep, and every node keeps serving`, async () => {
      const body = `{"channel":"${CHANNEL}","event":"forecast_update","data":${nested(levels)}}`;
      const res = await fetch(`${nodes[0]!.httpUrl}/v1/publish`, { method: "POST", headers: { authorization: `Bearer ${TEST_PUBLISH_KEY}` }, body });
      expect(res.status).toBe(400);
      const answer = (await res.json()) as { error: { code: string; message: string } };
      expect(answer.error.code).toBe("bad_request");
      expect(answer.error.message).toMatch(/nests deeper than 32 levels/);
      await everyNodeIsUp();
      await everyoneReceivesTheNextMessage();
    });
  }

  it("refuses a batch whose one message nests too deep, publishing none of it", async () => {
    const before = (await injector.hget(new RedisKeyspace(prefix).stateKey(CHANNEL), "offset")) ?? "0";
    const body = `{"messages":[{"channel":"${CHANNEL}","event":"ok","data":1},{"channel":"${CHANNEL}","event":"deep","data":${nested(40)}}]}`;
    const res = await fetch(`${nodes[1]!.httpUrl}/v1/publish`, { method: "POST", headers: { authorization: `Bearer ${TEST_PUBLISH_KEY}` }, body });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/messages\[1\]\.data nests deeper/);
    expect((await injector.hget(new RedisKeyspace(prefix).stateKey(CHANNEL), "offset")) ?? "0").toBe(before);
  });

  it("drops and counts garbage written into the nodes' pub/sub channel", async () => {
    const before = await sumOverNodes("gateway_redis_messages_dropped_total", { reason: "malformed" });
    const garbage = [
      "garbage",
      "",
      "{}",
      '{"type":"message","channel":"forecasts:deep","event":"x","data":1,"offset":1,"epoch":"e","ts":oops}',
      // A well-formed frame that names another channel must not leak into this one.
      encodeFrameHead("user:alice", "portfolio_update", '{"cash":1}') + encodeFrameTail(1, "e1", Date.now()),
      Buffer.from([0xff, 0xfe, 0x00, 0x7d]),
    ];
    for (const message of garbage) await injector.publish(new RedisKeyspace(prefix).busChannel(CHANNEL), message);
    const after = await eventually(
      () => sumOverNodes("gateway_redis_messages_dropped_total", { reason: "malformed" }),
      (counts) => counts.every((count, i) => count - (before[i] ?? 0) === garbage.length),
    );
    expect(after.map((count, i) => count - (before[i] ?? 0))).toEqual(nodes.map(() => garbage.length));
    await everyNodeIsUp();
    await everyoneReceivesTheNextMessage();
    for (const raw of raws) expect(raw.rawMessages.some((text) => text.includes("portfolio_update"))).toBe(false);
  });

  it("contains a frame the Socket.IO encoder cannot handle, delivered straight into Redis", async () => {
    const before = await sumOverNodes("gateway_delivery_failures_total", { sink: "socketio" });
    // The gateway never builds this (the API refuses it); a rogue publisher with Redis
    // access can, numbering it in sequence so every node takes it for the next message.
    const state = new RedisKeyspace(prefix).stateKey(CHANNEL);
    const offset = await injector.hincrby(state, "offset", 1);
    const epoch = (await injector.hget(state, "epoch")) as string;
    const frame = encodeFrameHead(CHANNEL, "forecast_update", nested(20_000)) + encodeFrameTail(offset, epoch, Date.now());
    await injector.publish(new RedisKeyspace(prefix).busChannel(CHANNEL), frame);
    const after = await eventually(
      () => sumOverNodes("gateway_delivery_failures_total", { sink: "socketio" }),
      (counts) => counts.every((count, i) => count > (before[i] ?? 0)),
    );
    expect(after.every((count, i) => count === (before[i] ?? 0) + 1)).toBe(true);
    await everyNodeIsUp();
    await everyoneReceivesTheNextMessage();
  });

  it("refuses a client command nested too deep with an error reply, on both transports", async () => {
    const raw = raws[0]!;
    // 2,000 levels fit in MAX_FRAME_BYTES; the depth limit, not the size limit, must refuse it.
    raw.socket.send(`{"type":"command","id":77,"name":"place_bet","data":${nested(2000)}}`);
    const reply = await raw.waitFor((frame) => frame.type === "reply" && frame.id === 77);
    expect(reply).toMatchObject({ ok: false, error: { code: "bad_request", message: expect.stringMatching(/nests deeper/) } });

    const { socket } = sockets[0]!;
    const answer = (await socket.emitWithAck("command", { name: "place_bet", data: JSON.parse(nested(40)) as unknown })) as { ok: boolean; error?: { code: string; message: string } };
    expect(answer).toMatchObject({ ok: false, error: { code: "bad_request", message: expect.stringMatching(/nests deeper/) } });
    await everyNodeIsUp();
  });

  it("answers a Socket.IO event named by a number with unknown_type instead of crashing the node", async () => {
    // socket.io-parser accepts `42[7,{}]` (event 7, ack id 2); socket.io-client never sends it, a hostile client can.
    const engine = new WebSocket(`ws://127.0.0.1:${nodes[2]!.port}/socket.io/?EIO=4&transport=websocket`, { headers: { authorization: `Bearer ${token({ sub: "numeric-event" })}` } });
    const packets: string[] = [];
    const arrived = (prefix: string): Promise<string> =>
      eventually(async () => packets.find((packet) => packet.startsWith(prefix)), (packet) => packet !== undefined, 5000) as Promise<string>;
    engine.on("message", (data: Buffer) => packets.push(data.toString("utf8")));
    await arrived("0{");
    engine.send("40");
    await arrived('42["welcome"');
    engine.send("422[7,{}]");
    const ack = JSON.parse((await arrived("432")).slice(3)) as [{ ok: boolean; error: { code: string } }];
    expect(ack[0]).toMatchObject({ ok: false, error: { code: "unknown_type" } });
    engine.close();
    await everyNodeIsUp();
    await everyoneReceivesTheNextMessage();
  });

  it("refuses a WebSocket upgrade to Socket.IO that names another transport, which engine.io would upgrade and later crash on", async () => {
    const node = nodes[1]!;
    const auth = `Bearer ${token({ sub: "polling-upgrade" })}`;
    const handshake = await fetch(`${node.httpUrl}/socket.io/?EIO=4&transport=polling`, { headers: { authorization: auth } });
    const sid = (JSON.parse((await handshake.text()).slice(1)) as { sid: string }).sid;
    for (const query of ["EIO=4&transport=polling", `EIO=4&transport=polling&sid=${sid}`, "EIO=4&transport=x"]) {
      const head = `GET /socket.io/?${query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: ${auth}\r\n\r\n`;
      expect(await firstResponse(node.port, head), query).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*\r\n\r\n\{"code":3,"message":"Bad request"\}$/);
    }
    // The polling session the refused upgrade named keeps working, and the node keeps serving.
    expect((await fetch(`${node.httpUrl}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body: "40" })).status).toBe(200);
    await everyNodeIsUp();
    await everyoneReceivesTheNextMessage();
  });
  it("asks for the token when a Socket.IO handshake carries an empty sid, which engine.io takes for a new session", async () => {
    const node = nodes[0]!;
    const polling = await fetch(`${node.httpUrl}/socket.io/?EIO=4&transport=polling&sid=`);
    expect(polling.status).toBe(401);
    expect(((await polling.json()) as { error: { code: string } }).error.code).toBe("invalid_token");
    const head = "GET /socket.io/?EIO=4&transport=websocket&sid= HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    expect(await firstResponse(node.port, head)).toMatch(/^HTTP\/1\.1 401 Unauthorized\r\n[\s\S]*"invalid_token"/);
  });
});

/** Writes a raw request head and resolves with the first complete response (by its Content-Length). */
async function firstResponse(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(head));
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete response within 5 s; got ${JSON.stringify(text)}`));
    }, 5000);
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      const length = /content-length: (\d+)/i.exec(text.slice(0, end));
      if (end === -1 || length === null || text.length < end + 4 + Number(length[1])) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(text.replace(/\r\nDate: [^\r]*/i, ""));
    });
    socket.on("error", reject);
  });
}
