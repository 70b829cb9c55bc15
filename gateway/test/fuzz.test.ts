/**
 * The fuzz suite: tens of thousands of generated inputs, seeded, against two
 * real gateway nodes on one Redis. `/ws` frames, Socket.IO events and raw
 * engine.io packets, publish bodies, ingest stream entries and HTTP
 * handshakes: each must be answered as the documents say (the rules are
 * written out again in support/fuzz/documented.ts and handshakes.ts), no
 * node may stop or log an error, and bystanders on both nodes and both
 * transports must receive every broadcast of the run exactly once, in order.
 *
 * FUZZ_SEED=<n> reproduces a run; every failure names the seed and the case.
 * The nodes' rate limits are raised so that they do not hide the answers
 * (rate-limits.test.ts covers those).
 */

import { Redis } from "ioredis";
import fc from "fast-check";
import { io } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { MessageFrame, ServerFrame } from "../../shared/src/protocol.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { eventually } from "./support/eventually.js";
import { BEAT_CHANNEL, closingFrame, enginePacket, FUZZ_GRANTS, ingestCase, INGEST_CHANNEL, LANE, PUBLISH_CHANNELS, publishCase, socketIoEvent, wsFrame, type FrameTemplate, type IngestCase, type MINTED_TOKENS, type PacketCase } from "./support/fuzz/cases.js";
import { frameAnswer, FUZZ_LIMITS, ingestOutcome, publishAnswer, readRequest, SessionModel, type Accepted, type Allowed } from "./support/fuzz/documented.js";
import { answeredAsDocumented, handshakeCase, renderHandshake, sendHandshake } from "./support/fuzz/handshakes.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";

const SEED = process.env["FUZZ_SEED"] === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env["FUZZ_SEED"]);
const COUNTS = { wsFrames: 16_000, wsClosing: 60, socketIoEvents: 6000, enginePackets: 600, publishes: 2500, ingest: 2500, handshakes: 1500 } as const;
const BYSTANDER_CHANNELS = [...PUBLISH_CHANNELS, INGEST_CHANNEL, BEAT_CHANNEL];

let redis: RedisHandle;
let prefix: string;
let nodes: GatewayNode[] = [];
let backend: Redis;
const bystanders: Bystander[] = [];
const closers: Array<() => void> = [];
const ran: Record<string, number> = {};
/** What must reach the bystanders: per channel, offset → event and data text (JSON.stringify of the data). */
const published = new Map<string, Map<number, { event: string; data: string }>>();
const ingested: Accepted[] = [];
let beats = 0;
let beating: Promise<void> | null = null;
let stopBeating = false;

/** `n` cases of `arbitrary` for section `index`: its own seed derived from the run's. */
function cases<T>(arbitrary: fc.Arbitrary<T>, index: number, n: number): T[] {
  return fc.sample(arbitrary, { seed: SEED + index * 7919, numRuns: n });
}

function describeCase(value: unknown): string {
  const text = JSON.stringify(value, (_key, v: unknown) => (Buffer.isBuffer(v) ? `<bytes ${v.toString("hex")}>` : v instanceof Uint8Array ? `<bytes ${Buffer.from(v).toString("hex")}>` : v));
  return (text ?? String(value)).slice(0, 600);
}

function fail(section: string, index: number, input: unknown, problem: string): never {
  throw new Error(`${section} case ${index} (FUZZ_SEED=${SEED}): ${problem}\n  input: ${describeCase(input)}`);
}

interface Bystander {
  readonly name: string;
  readonly messages: MessageFrame[];
}

async function rawBystander(node: GatewayNode): Promise<Bystander> {
  const ws = new WebSocket(node.wsUrl, { headers: { authorization: `Bearer ${token({ sub: "bystander-raw", channels: [...FUZZ_GRANTS] })}` } });
  const bystander: Bystander = { name: `raw on ${node.name}`, messages: [] };
  const replies = new Map<number, (ok: boolean) => void>();
  ws.on("message", (data: Buffer) => {
    const frame = JSON.parse(data.toString("utf8")) as ServerFrame;
    if (frame.type === "message") bystander.messages.push(frame);
    if (frame.type === "reply") replies.get(frame.id)?.(frame.ok);
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  closers.push(() => ws.terminate());
  for (const [i, channel] of BYSTANDER_CHANNELS.entries()) {
    const ok = new Promise<boolean>((resolve) => replies.set(i + 1, resolve));
    ws.send(JSON.stringify({ type: "subscribe", id: i + 1, channel }));
    expect(await ok).toBe(true);
  }
  return bystander;
}

async function socketIoBystander(node: GatewayNode, transport: "websocket" | "polling"): Promise<Bystander> {
  const socket = io(node.httpUrl, { extraHeaders: { authorization: `Bearer ${token({ sub: `bystander-${transport}`, channels: [...FUZZ_GRANTS] })}` }, transports: [transport], reconnection: false, timeout: 10_000 });
  const bystander: Bystander = { name: `socket.io ${transport} on ${node.name}`, messages: [] };
  socket.on("message", (frame: MessageFrame) => bystander.messages.push(frame));
  await new Promise<void>((resolve, reject) => {
    socket.once("welcome", () => resolve());
    socket.once("connect_error", reject);
  });
  closers.push(() => socket.close());
  for (const channel of BYSTANDER_CHANNELS) expect(((await socket.timeout(10_000).emitWithAck("subscribe", { channel })) as { ok: boolean }).ok).toBe(true);
  return bystander;
}

/** A broadcast every 100 ms for the whole run: the bystanders must see each one while the fuzz goes on. */
async function beat(): Promise<void> {
  while (!stopBeating) {
    beats++;
    const res = await fetch(`${nodes[beats % nodes.length]!.httpUrl}/v1/publish`, { method: "POST", headers: { authorization: `Bearer ${TEST_PUBLISH_KEY}` }, body: JSON.stringify({ channel: BEAT_CHANNEL, event: "beat", data: { n: beats } }) });
    if (res.status !== 200) throw new Error(`heartbeat ${beats} refused: ${res.status} ${await res.text()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function nodesAreUp(section: string): Promise<void> {
  for (const node of nodes) {
    if (!node.proc.isRunning()) throw new Error(`${section}: ${node.name} stopped (FUZZ_SEED=${SEED}):\n${node.proc.output().slice(-3000)}`);
    expect((await fetch(`${node.httpUrl}/healthz`)).status, `${section}: ${node.name} /healthz`).toBe(200);
  }
}

beforeAll(async () => {
  console.log(`fuzz: FUZZ_SEED=${SEED}`);
  redis = await startRedis();
  backend = new Redis(redis.url);
  prefix = uniquePrefix("fuzz");
  const env = {
    MAX_FRAME_BYTES: String(FUZZ_LIMITS.maxFrameBytes),
    MAX_JSON_DEPTH: String(FUZZ_LIMITS.maxJsonDepth),
    MAX_SUBSCRIPTIONS: String(FUZZ_LIMITS.maxSubscriptions),
    PUBLISH_MAX_BODY_BYTES: String(FUZZ_LIMITS.publishMaxBodyBytes),
    PUBLISH_MAX_BATCH: String(FUZZ_LIMITS.publishMaxBatch),
    // Limits that would answer rate_limited instead of what the fuzz asks about.
    CLIENT_FRAMES_PER_S: "100000",
    CLIENT_FRAME_BURST: "1000000",
    SUBSCRIBES_PER_S: "100000",
    SUBSCRIBE_BURST: "1000000",
    CONNECTS_PER_ADDRESS_PER_S: "0",
    MAX_CONNECTIONS_PER_USER: "0",
  };
  nodes = await Promise.all(["fuzz-a", "fuzz-b"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env })));
  bystanders.push(await rawBystander(nodes[1]!), await socketIoBystander(nodes[0]!, "websocket"), await socketIoBystander(nodes[1]!, "polling"));
  beating = beat();
}, 60_000);

afterAll(async () => {
  stopBeating = true;
  await beating?.catch(() => undefined);
  for (const close of closers) close();
  backend?.disconnect();
  await Promise.all(nodes.map((node) => node.stop()));
  await redis?.stop();
  console.log(`fuzz: FUZZ_SEED=${SEED}, cases: ${JSON.stringify(ran)}, ${Object.values(ran).reduce((a, b) => a + b, 0)} in all`);
});

/** Tokens a fuzz connection's `refresh` may carry, and what each must get (anything else: invalid_token). */
function refreshAnswers(sub: string): { tokens: Map<string, string>; answers: Map<string, string> } {
  const now = Math.floor(Date.now() / 1000);
  const minted: Record<(typeof MINTED_TOKENS)[number], [string, string]> = {
    "#OTHER_USER#": [token({ sub: `${sub}-other`, channels: [...FUZZ_GRANTS] }), "forbidden"],
    "#OLDER#": [token({ sub, channels: [...FUZZ_GRANTS], iat: now - 600 }), "forbidden"],
    "#EXPIRED#": [token({ sub, channels: [...FUZZ_GRANTS], iat: now - 7200 }, { expiresIn: 3600 }), "invalid_token"],
  };
  return { tokens: new Map(Object.entries(minted).map(([placeholder, [jwt]]) => [placeholder, jwt])), answers: new Map(Object.values(minted)) };
}

function withTokens(text: string, tokens: ReadonlyMap<string, string>): string {
  let out = text;
  for (const [placeholder, jwt] of tokens) out = out.replaceAll(placeholder, jwt);
  return out;
}

/** Matches answers to expectations that share an id (ids need not be unique in a batch): each answer must fit a distinct expectation. */
function matchAll(expected: readonly Allowed[], got: readonly string[]): boolean {
  if (expected.length !== got.length) return false;
  const left = [...expected].sort((a, b) => a.size - b.size);
  const codes = [...got];
  for (const allowed of left) {
    const at = codes.findIndex((code) => allowed.has(code));
    if (at === -1) return false;
    codes.splice(at, 1);
  }
  return true;
}

interface WsFuzzSocket {
  readonly ws: WebSocket;
  readonly model: SessionModel;
  readonly tokens: Map<string, string>;
  readonly frames: ServerFrame[];
  closed: { code: number } | null;
}

async function openFuzzSocket(node: GatewayNode, sub: string): Promise<WsFuzzSocket> {
  const { tokens, answers } = refreshAnswers(sub);
  const ws = new WebSocket(node.wsUrl, { headers: { authorization: `Bearer ${token({ sub, channels: [...FUZZ_GRANTS] })}` }, maxPayload: 1 << 20 });
  const socket: WsFuzzSocket = { ws, model: new SessionModel(sub, FUZZ_GRANTS, answers), tokens, frames: [], closed: null };
  ws.on("message", (data: Buffer) => {
    const frame = JSON.parse(data.toString("utf8")) as ServerFrame;
    if (frame.type !== "message") socket.frames.push(frame);
  });
  ws.on("close", (code) => (socket.closed = { code }));
  ws.on("error", () => undefined);
  await eventually(async () => socket.frames.some((frame) => frame.type === "welcome"), (seen) => seen, 10_000);
  socket.frames.length = 0;
  closers.push(() => ws.terminate());
  return socket;
}

let nextUniqueId = 1_000_000_000_000;

/** One batch of frames on one socket: send all, wait for every answer, check each against the documents. */
async function runFrameBatch(socket: WsFuzzSocket, batch: ReadonlyArray<{ index: number; frame: FrameTemplate }>): Promise<void> {
  socket.model.startBatch();
  socket.frames.length = 0;
  const errors: Array<{ index: number; frame: FrameTemplate }> = [];
  const byId = new Map<number, Array<{ index: number; allowed: Allowed; frame: FrameTemplate }>>();
  const usedEdgeIds = new Set<number>();
  for (const { index, frame } of batch) {
    let data: Buffer;
    if (frame.binary) data = Buffer.from(frame.bytes);
    else {
      let id = nextUniqueId++;
      if (frame.id === "zero" || frame.id === "max") {
        const edge = frame.id === "zero" ? 0 : Number.MAX_SAFE_INTEGER;
        if (!usedEdgeIds.has(edge)) id = edge;
        usedEdgeIds.add(edge);
      }
      data = Buffer.from(withTokens(frame.text, socket.tokens).replaceAll("#ID#", String(id)));
    }
    const answer = frameAnswer(data, frame.binary, socket.model);
    if (answer.kind === "close") fail("ws frames", index, frame, "generated a closing frame in the pipelined section");
    if (answer.kind === "error") errors.push({ index, frame });
    else byId.set(answer.id, [...(byId.get(answer.id) ?? []), { index, allowed: answer.allowed, frame }]);
    socket.ws.send(data, { binary: frame.binary });
  }
  const replies = [...byId.values()].reduce((n, list) => n + list.length, 0);
  const answered = (): boolean => socket.frames.length >= errors.length + replies;
  await eventually(async () => answered() || socket.closed !== null, (done) => done, 20_000).catch(() => undefined);
  const first = batch[0]?.index ?? 0;
  if (socket.closed !== null) fail("ws frames", first, batch.map(({ frame }) => frame), `socket closed with ${socket.closed.code} during the batch`);
  const errorFrames = socket.frames.filter((frame) => frame.type === "error");
  const replyFrames = socket.frames.filter((frame): frame is Extract<ServerFrame, { type: "reply" }> => frame.type === "reply");
  if (errorFrames.length !== errors.length || replyFrames.length !== replies || socket.frames.length !== errors.length + replies) {
    fail("ws frames", first, batch.map(({ frame }) => frame), `expected ${errors.length} error frames and ${replies} replies, got ${errorFrames.length} and ${replyFrames.length} of ${socket.frames.length} frames`);
  }
  for (const [i, frame] of errorFrames.entries()) {
    if (frame.error.code !== "bad_request") fail("ws frames", errors[i]!.index, errors[i]!.frame, `error frame ${JSON.stringify(frame)}`);
  }
  const got = new Map<number, string[]>();
  for (const reply of replyFrames) got.set(reply.id, [...(got.get(reply.id) ?? []), reply.ok ? "ok" : reply.error.code]);
  for (const [id, expected] of byId) {
    if (!matchAll(expected.map((e) => e.allowed), got.get(id) ?? [])) {
      const one = expected[0]!;
      fail("ws frames", one.index, one.frame, `reply ${JSON.stringify(got.get(id))} to id ${id}, documented: ${expected.map((e) => [...e.allowed].join("|")).join(", ")}`);
    }
  }
}

async function sendAndWaitClose(node: GatewayNode, index: number, data: Buffer, binary: boolean): Promise<void> {
  const socket = await openFuzzSocket(node, `closing-${index}`);
  const answer = frameAnswer(data, binary, socket.model);
  socket.ws.send(data, { binary });
  await eventually(async () => socket.closed, (closed) => closed !== null, 10_000).catch(() => undefined);
  if (answer.kind !== "close") fail("ws closing frames", index, { bytes: data.length, binary }, `generator made a frame that does not close: ${answer.kind}`);
  if (socket.closed?.code !== answer.code) fail("ws closing frames", index, { head: data.subarray(0, 80).toString("latin1"), bytes: data.length, binary }, `closed with ${socket.closed?.code ?? "nothing"}, documented ${answer.code}`);
}

describe("fuzz", () => {
  it(`answers ${COUNTS.wsFrames} generated /ws frames as documented`, async () => {
    const frames = cases(wsFrame, 1, COUNTS.wsFrames);
    const sockets = await Promise.all([0, 1, 2, 3].map((i) => openFuzzSocket(nodes[i % 2]!, `fuzz-ws-${i}`)));
    const BATCH = 250;
    for (let start = 0; start < frames.length; start += BATCH * sockets.length) {
      await Promise.all(
        sockets.map((socket, s) => {
          const from = start + s * BATCH;
          return runFrameBatch(socket, frames.slice(from, from + BATCH).map((frame, i) => ({ index: from + i, frame })));
        }),
      );
    }
    ran["ws frames"] = frames.length;

    const closing = cases(closingFrame, 2, COUNTS.wsClosing);
    for (let start = 0; start < closing.length; start += 10) {
      await Promise.all(closing.slice(start, start + 10).map(({ data, binary }, i) => sendAndWaitClose(nodes[(start + i) % 2]!, start + i, data, binary)));
    }
    ran["ws closing frames"] = closing.length;
    await nodesAreUp("ws frames");
  }, 120_000);

  it(`answers ${COUNTS.socketIoEvents} generated Socket.IO events as documented`, async () => {
    const events = cases(socketIoEvent, 3, COUNTS.socketIoEvents);
    const sockets = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const sub = `fuzz-sio-${i}`;
        const { tokens, answers } = refreshAnswers(sub);
        const socket = io(nodes[i % 2]!.httpUrl, { extraHeaders: { authorization: `Bearer ${token({ sub, channels: [...FUZZ_GRANTS] })}` }, transports: ["websocket"], reconnection: false, timeout: 10_000 });
        await new Promise<void>((resolve, reject) => {
          socket.once("welcome", () => resolve());
          socket.once("connect_error", reject);
        });
        closers.push(() => socket.close());
        return { socket, tokens, model: new SessionModel(sub, FUZZ_GRANTS, answers) };
      }),
    );
    const BATCH = 150;
    for (let start = 0; start < events.length; start += BATCH * sockets.length) {
      await Promise.all(
        sockets.map(async ({ socket, tokens, model }, s) => {
          const from = start + s * BATCH;
          model.startBatch();
          const batch = events.slice(from, from + BATCH).map((event, i) => {
            const args = event.args.map((arg) => (typeof arg === "object" && arg !== null && !Buffer.isBuffer(arg) ? (JSON.parse(withTokens(JSON.stringify(arg), tokens)) as unknown) : arg));
            const fields = args.length > 0 ? args[0] : {};
            const read = readRequest(event.name, fields);
            const allowed = "refused" in read ? read.refused : model.apply(read.request);
            return { index: from + i, event, allowed, answer: socket.timeout(15_000).emitWithAck(event.name, ...args) as Promise<{ ok: boolean; error?: { code: string } }> };
          });
          for (const { index, event, allowed, answer } of batch) {
            const got = await answer.catch((err: unknown) => fail("socket.io events", index, event, `no acknowledgement: ${String(err)}`));
            const code = got.ok ? "ok" : (got.error?.code ?? "none");
            if (!allowed.has(code)) fail("socket.io events", index, event, `answered ${JSON.stringify(got).slice(0, 300)}, documented: ${[...allowed].join("|")}`);
          }
          if (!socket.connected) fail("socket.io events", from, events.slice(from, from + BATCH), "session closed");
        }),
      );
    }
    ran["socket.io events"] = events.length;
    await nodesAreUp("socket.io events");
  }, 120_000);

  it(`answers ${COUNTS.enginePackets} raw engine.io packets as documented, or ends the session`, async () => {
    const packets = cases(enginePacket, 4, COUNTS.enginePackets);
    let session: EngineSession | null = null;
    let sessions = 0;
    let ackId = 1;
    for (const [index, packet] of packets.entries()) {
      if (session === null) {
        session = await EngineSession.open(nodes[index % 2]!, `fuzz-engine-${index}`);
        sessions++;
      }
      const result = await session.send(packet, ackId++);
      if (result.kind === "wrong") fail("engine.io packets", index, packet, result.problem);
      if (result.kind === "closed") session = null;
    }
    session?.close();
    console.log(`fuzz: engine.io packets ended ${sessions - 1} sessions`);
    ran["engine.io packets"] = packets.length;
    await nodesAreUp("engine.io packets");
  }, 120_000);

  it(`answers ${COUNTS.publishes} generated publish requests as documented`, async () => {
    const requests = cases(publishCase, 5, COUNTS.publishes);
    const keys = new Map<string, { offset: number; epoch: string }>();
    // Four lanes at once, each in order: a lane's idempotency keys are its own (LANE), so the key model holds.
    const lane = async (laneIndex: number): Promise<void> => {
      for (let index = laneIndex; index < requests.length; index += 4) {
        const request = { ...requests[index]!, body: Buffer.from(requests[index]!.body.toString("latin1").replaceAll(LANE, String(laneIndex)), "latin1") };
        const node = nodes[index % 2]!;
        const headers: Record<string, string> = {};
        if (request.key !== "none") headers["authorization"] = `Bearer ${request.key === "right" ? TEST_PUBLISH_KEY : "wrong-key-0123456789abcdef"}`;
        const res = await fetch(`${node.httpUrl}/v1/publish`, { method: "POST", headers, body: new Uint8Array(request.body) });
        const body = (await res.json()) as { error?: { code: string }; offset?: number; epoch?: string; duplicate?: boolean; results?: Array<{ offset: number; epoch: string; duplicate?: boolean }> };
        const expected = publishAnswer(request.body, request.key === "right");
        const shown = { key: request.key, body: request.body.toString("latin1").slice(0, 400), bytes: request.body.length };
        if (expected.status !== 200) {
          if (!expected.status.has(res.status)) fail("publish", index, shown, `answered ${res.status} ${JSON.stringify(body).slice(0, 200)}, documented ${[...expected.status].join("|")}`);
          const code = { 400: "bad_request", 401: "unauthorized", 403: "forbidden", 413: "payload_too_large" }[res.status];
          if (body.error?.code !== code) fail("publish", index, shown, `error body ${JSON.stringify(body)} for ${res.status}`);
          continue;
        }
        if (res.status !== 200) fail("publish", index, shown, `answered ${res.status} ${JSON.stringify(body).slice(0, 300)}, documented 200`);
        const results = expected.batch ? (body.results ?? []) : [{ offset: body.offset ?? -1, epoch: body.epoch ?? "", ...(body.duplicate === undefined ? {} : { duplicate: body.duplicate }) }];
        if (results.length !== expected.messages.length) fail("publish", index, shown, `${results.length} results for ${expected.messages.length} messages`);
        for (const [i, message] of expected.messages.entries()) {
          const result = results[i]!;
          if (!Number.isSafeInteger(result.offset) || typeof result.epoch !== "string") fail("publish", index, shown, `result ${JSON.stringify(result)}`);
          const key = message.idempotencyKey === undefined ? undefined : `${message.channel}\u0000${message.idempotencyKey}`;
          const first = key === undefined ? undefined : keys.get(key);
          if (first !== undefined) {
            if (result.duplicate !== true || result.offset !== first.offset || result.epoch !== first.epoch) fail("publish", index, shown, `key seen before at ${JSON.stringify(first)}, answered ${JSON.stringify(result)}`);
            continue;
          }
          if (result.duplicate === true) fail("publish", index, shown, `answered duplicate for a new key: ${JSON.stringify(result)}`);
          if (key !== undefined) keys.set(key, { offset: result.offset, epoch: result.epoch });
          if ((PUBLISH_CHANNELS as readonly string[]).includes(message.channel)) {
            const channel = published.get(message.channel) ?? new Map<number, { event: string; data: string }>();
            channel.set(result.offset, { event: message.event, data: message.data });
            published.set(message.channel, channel);
          }
        }
      }
    };
    await Promise.all([0, 1, 2, 3].map(lane));
    ran["publish requests"] = requests.length;
    await nodesAreUp("publish");
  }, 120_000);

  it(`sets aside or publishes ${COUNTS.ingest} generated ingest entries as documented`, async () => {
    const entries = cases(ingestCase, 6, COUNTS.ingest);
    const stream = `${prefix}:ingest`;
    const ids: string[] = [];
    for (let start = 0; start < entries.length; start += 500) {
      const pipeline = backend.pipeline();
      for (const fields of entries.slice(start, start + 500)) pipeline.xadd(stream, "*", ...fields.flat());
      for (const [err, id] of (await pipeline.exec()) ?? []) {
        if (err) throw err;
        ids.push(id as string);
      }
    }
    const expectations = entries.map((fields) => ingestOutcome(fields));
    const rejectedCount = expectations.filter((outcome) => "rejected" in outcome).length;
    const rejectedKey = `${prefix}:ingest:rejected`;
    await eventually(async () => backend.xlen(rejectedKey), (n) => n >= rejectedCount, 30_000).catch(() => undefined);
    await eventually(async () => ((await backend.xpending(stream, "gateway")) as [number])[0], (pending) => pending === 0, 30_000);
    const rejected = new Map<string, string>();
    for (const [, fields] of await backend.xrange(rejectedKey, "-", "+")) {
      const record = new Map<string, string>();
      for (let i = 0; i + 1 < fields.length; i += 2) if (!record.has(fields[i]!) || ["code", "entry_id", "reason", "node"].includes(fields[i]!)) record.set(fields[i]!, fields[i + 1]!);
      rejected.set(record.get("entry_id") ?? "", record.get("code") ?? "");
    }
    for (const [index, outcome] of expectations.entries()) {
      const id = ids[index]!;
      const code = rejected.get(id);
      const shown = (entries[index] as IngestCase).map(([name, value]) => [name, typeof value === "string" ? value.slice(0, 200) : `<bytes ${value.toString("hex").slice(0, 80)}>`]);
      if ("rejected" in outcome) {
        if (code === undefined || !outcome.rejected.has(code)) fail("ingest", index, shown, `set aside as ${code ?? "nothing (published)"}, documented ${[...outcome.rejected].join("|")}`);
      } else {
        if (code !== undefined) fail("ingest", index, shown, `set aside as ${code}, documented: published`);
        if (outcome.accepted.channel === INGEST_CHANNEL) ingested.push(outcome.accepted);
      }
    }
    expect(rejected.size, "set-aside entries").toBe(rejectedCount);
    ran["ingest entries"] = entries.length;
    await nodesAreUp("ingest");
  }, 120_000);

  it(`answers ${COUNTS.handshakes} generated HTTP requests at the front door as documented`, async () => {
    const requests = cases(handshakeCase, 7, COUNTS.handshakes);
    const validToken = token({ sub: "fuzz-handshake", channels: [...FUZZ_GRANTS] });
    // A pool, not waves: requests that go unanswered wait 300 ms, and should not hold the others back.
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let index = next++; index < requests.length; index = next++) {
        const { head, expected } = renderHandshake(requests[index]!, validToken);
        const waitMs = expected.answers.length === 0 ? 300 : 5000;
        const result = await sendHandshake(nodes[requests[index]!.node]!.port, head, waitMs);
        if (!answeredAsDocumented(result, expected)) {
          fail("handshakes", index, { head: head.slice(0, 500), bytes: head.length }, `got ${JSON.stringify(result).slice(0, 300)}, documented ${JSON.stringify(expected)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: 24 }, worker));
    ran["handshakes"] = requests.length;
    await nodesAreUp("handshakes");
  }, 120_000);

  it("kept every node up and quiet, and the bystanders received every broadcast of the run once, in order", async () => {
    stopBeating = true;
    await beating;
    await nodesAreUp("end");
    const lastBeat = beats;
    const expected = new Map<string, Array<{ event: string; data: string }>>();
    for (const channel of PUBLISH_CHANNELS) {
      const byOffset = published.get(channel) ?? new Map<number, { event: string; data: string }>();
      const offsets = [...byOffset.keys()].sort((a, b) => a - b);
      expect(offsets, `${channel}: accepted offsets are 1..n (nothing published for a refused request)`).toEqual(offsets.map((_, i) => i + 1));
      expected.set(channel, offsets.map((offset) => byOffset.get(offset)!));
    }
    expected.set(INGEST_CHANNEL, ingested.map(({ event, data }) => ({ event, data })));
    expected.set(BEAT_CHANNEL, Array.from({ length: lastBeat }, (_, i) => ({ event: "beat", data: JSON.stringify({ n: i + 1 }) })));
    for (const bystander of bystanders) {
      await eventually(async () => bystander.messages.filter((m) => m.channel === BEAT_CHANNEL).length, (n) => n >= lastBeat, 20_000).catch(() => undefined);
      await eventually(async () => bystander.messages.filter((m) => m.channel === INGEST_CHANNEL).length, (n) => n >= ingested.length, 20_000).catch(() => undefined);
      for (const [channel, messages] of expected) {
        const got = bystander.messages.filter((m) => m.channel === channel);
        expect(got.map((m) => m.offset), `${bystander.name}: ${channel} offsets, each once, in order`).toEqual(messages.map((_, i) => i + 1));
        expect(got.map((m) => ({ event: m.event, data: JSON.stringify(m.data) })), `${bystander.name}: ${channel} contents`).toEqual(messages);
      }
    }
    for (const node of nodes) {
      const errors = node.proc
        .output()
        .split("\n")
        .filter((line) => /"level":(50|60)/.test(line));
      expect(errors, `${node.name} logged errors`).toEqual([]);
    }
    console.log(`fuzz: ${lastBeat} heartbeats, ${[...expected.values()].reduce((n, list) => n + list.length, 0)} broadcasts checked at ${bystanders.length} bystanders`);
  }, 60_000);
});

/** A raw engine.io WebSocket session with its namespace connected, for packet-level cases. */
class EngineSession {
  private readonly packets: string[] = [];
  private closedWith: number | null = null;
  /** Called on every packet and on close, to wake whoever waits. */
  private wake: () => void = () => undefined;

  private constructor(
    private readonly ws: WebSocket,
    private readonly model: SessionModel,
  ) {
    ws.on("message", (data: Buffer, binary: boolean) => {
      this.packets.push(binary ? "<binary>" : data.toString("utf8"));
      this.wake();
    });
    ws.on("close", (code) => {
      this.closedWith = code;
      this.wake();
    });
    ws.on("error", () => undefined);
  }

  /** Resolves once `done` holds (checked on every packet and on close), or after `timeoutMs`. */
  private until(done: () => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(finish, timeoutMs);
      function finish(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        if (done()) finish();
      };
      this.wake();
    });
  }

  static async open(node: GatewayNode, sub: string): Promise<EngineSession> {
    const { answers } = refreshAnswers(sub);
    const ws = new WebSocket(`ws://127.0.0.1:${node.port}/socket.io/?EIO=4&transport=websocket`, { headers: { authorization: `Bearer ${token({ sub, channels: [...FUZZ_GRANTS] })}` } });
    const session = new EngineSession(ws, new SessionModel(sub, FUZZ_GRANTS, answers));
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    ws.send("40");
    await session.until(() => session.packets.some((packet) => packet.startsWith('42["welcome"')), 10_000);
    if (!session.packets.some((packet) => packet.startsWith('42["welcome"'))) throw new Error(`no welcome on a raw Socket.IO session: ${JSON.stringify(session.packets)}`);
    closers.push(() => ws.terminate());
    return session;
  }

  close(): void {
    this.ws.close();
  }

  /**
   * Sends one case, then a ping event as a marker: everything the server
   * answers to the case arrives before the marker's acknowledgement (or the
   * session ends). A well-formed event must get its documented answer; a
   * reserved name ends the session; anything else may end it, go
   * unanswered, or get an answer the documents list.
   */
  async send(packet: PacketCase, ackId: number): Promise<{ kind: "ok" } | { kind: "closed" } | { kind: "wrong"; problem: string }> {
    this.packets.length = 0;
    this.model.startBatch();
    let allowed: Allowed | null = null;
    if (packet.kind === "event") {
      const fields = packet.args.length > 0 ? packet.args[0] : {};
      const read = readRequest(String(packet.name), fields);
      allowed = "refused" in read ? read.refused : this.model.apply(read.request);
      this.ws.send(`42${ackId}${JSON.stringify([packet.name, ...packet.args])}`);
    } else if (packet.kind === "reserved") {
      this.ws.send(`42${ackId}${JSON.stringify([packet.name, {}])}`);
    } else if (packet.kind === "raw") {
      this.ws.send(packet.text.replaceAll("#ACK#", String(ackId)));
    } else {
      this.ws.send(packet.bytes, { binary: true });
    }
    const marker = `43${ackId + 1_000_000}[`;
    if (this.closedWith === null && this.ws.readyState === WebSocket.OPEN) this.ws.send(`42${ackId + 1_000_000}["ping"]`);
    // Subscribes are answered after Redis, so after the marker: a well-formed event waits for its own answer too.
    const own = `43${ackId}[`;
    await this.until(() => this.closedWith !== null || (this.packets.some((p) => p.startsWith(marker)) && (packet.kind !== "event" || this.packets.some((p) => p.startsWith(own)))), 10_000);
    const closed = this.closedWith !== null;
    if (!closed && !this.packets.some((p) => p.startsWith(marker))) return { kind: "wrong", problem: `neither the marker's acknowledgement nor a close; got ${JSON.stringify(this.packets).slice(0, 300)}` };
    for (const answered of this.packets) {
      if (answered.startsWith(marker) || answered === "2" || answered.startsWith('42["message"') || answered.startsWith('42["closing"')) continue;
      const ack = /^43(\d+)(\[.*)$/s.exec(answered);
      if (ack === null) return { kind: "wrong", problem: `unexpected packet ${answered.slice(0, 200)}` };
      const [answer] = JSON.parse(ack[2]!) as [{ ok?: unknown; error?: { code?: unknown } }];
      const code = answer.ok === true ? "ok" : String(answer.error?.code);
      if (allowed !== null && Number(ack[1]) === ackId && !allowed.has(code)) return { kind: "wrong", problem: `answered ${ack[2]!.slice(0, 200)}, documented ${[...allowed].join("|")}` };
      if (!["ok", ...KNOWN_CODES].includes(code)) return { kind: "wrong", problem: `answered an undocumented code: ${ack[2]!.slice(0, 200)}` };
    }
    if (packet.kind === "event" && !closed && !this.packets.some((p) => p.startsWith(`43${ackId}[`))) return { kind: "wrong", problem: "a well-formed event went unanswered" };
    if (packet.kind === "event" && closed) return { kind: "wrong", problem: `a well-formed event ended the session (${this.closedWith})` };
    if (packet.kind === "reserved" && !closed) return { kind: "wrong", problem: "a reserved event name did not end the session" };
    return closed ? { kind: "closed" } : { kind: "ok" };
  }
}

const KNOWN_CODES = ["bad_request", "unknown_type", "invalid_channel", "forbidden", "already_subscribed", "not_subscribed", "limit_exceeded", "invalid_token", "unavailable"];
