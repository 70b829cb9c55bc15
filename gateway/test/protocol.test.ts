/**
 * The frame protocol on one real node: replies, refusals, limits, refresh and
 * expiry. A bystander client must keep receiving through all the bad input.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CloseCodes } from "../../shared/src/codes.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { connect, publish, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let node: GatewayNode;
let bystander: TestClient;
const clients: TestClient[] = [];

async function client(sub: string, claims: Record<string, unknown> = {}, expiresIn: number = 3600): Promise<TestClient> {
  const c = await connect(node.wsUrl, { token: token({ sub, ...claims }, { expiresIn }) });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  redis = await startRedis();
  node = await startGatewayNode({
    name: "proto",
    redisUrl: redis.url,
    redisPrefix: uniquePrefix("proto"),
    env: { MAX_FRAME_BYTES: "1024", MAX_SUBSCRIPTIONS: "4", JWT_CLOCK_TOLERANCE_S: "0" },
  });
  bystander = await client("bystander");
  await bystander.subscribe("race");
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await node?.stop();
  await redis?.stop();
});

describe("subscriptions", () => {
  it("allows public channels and the own personal channel, forbids others", async () => {
    const c = await client("erin");
    expect(await c.request({ type: "subscribe", channel: "forecasts" })).toMatchObject({ ok: true, channel: "forecasts" });
    expect(await c.request({ type: "subscribe", channel: "user:frank" })).toMatchObject({ ok: false, error: { code: "forbidden" } });
    expect(await c.request({ type: "subscribe", channel: "vip" })).toMatchObject({ ok: false, error: { code: "forbidden" } });
    expect(await c.request({ type: "subscribe", channel: "bad channel!" })).toMatchObject({ ok: false, error: { code: "invalid_channel" } });
    expect(await c.request({ type: "subscribe", channel: "forecasts" })).toMatchObject({ ok: false, error: { code: "already_subscribed" } });
  });

  it("honours exact and prefix grants from the channels claim", async () => {
    const c = await client("gina", { channels: ["vip", "odds:*"] });
    expect(await c.request({ type: "subscribe", channel: "vip" })).toMatchObject({ ok: true });
    expect(await c.request({ type: "subscribe", channel: "odds:race-7" })).toMatchObject({ ok: true });
    expect(await c.request({ type: "subscribe", channel: "vip2" })).toMatchObject({ ok: false, error: { code: "forbidden" } });
  });

  it("caps subscriptions per connection, the personal channel included", async () => {
    const c = await client("hank", { channels: ["c:*"] });
    for (const channel of ["c:1", "c:2", "c:3"]) expect(await c.request({ type: "subscribe", channel })).toMatchObject({ ok: true });
    expect(await c.request({ type: "subscribe", channel: "c:4" })).toMatchObject({ ok: false, error: { code: "limit_exceeded" } });
  });

  it("stops deliveries after unsubscribe and refuses a second unsubscribe", async () => {
    const c = await client("ivy");
    await c.subscribe("forecasts");
    expect(await c.request({ type: "unsubscribe", channel: "forecasts" })).toMatchObject({ ok: true, channel: "forecasts" });
    expect(await c.request({ type: "unsubscribe", channel: "forecasts" })).toMatchObject({ ok: false, error: { code: "not_subscribed" } });
    await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts", event: "f", data: 1 });
    await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "user:ivy", event: "marker", data: null });
    await c.waitForMessage((m) => m.event === "marker");
    expect(c.messages("forecasts")).toHaveLength(0);
  });
});

describe("bad frames", () => {
  it("answers unparsable and unattributable frames with an error frame", async () => {
    const c = await client("jack");
    const cases = ["{not json", "[1,2]", '"str"', '{"type":"subscribe","channel":"race"}', '{"id":-1,"type":"ping"}', '{"id":1.5,"type":"ping"}'];
    for (const raw of cases) {
      const before = c.frames.length;
      c.sendRaw(raw);
      const frame = await c.waitFor((f) => c.frames.indexOf(f) >= before && f.type === "error");
      expect(frame).toMatchObject({ type: "error", error: { code: "bad_request" } });
    }
  });

  it("answers unknown types and missing fields with a reply carrying the id", async () => {
    const c = await client("kate");
    c.sendRaw('{"id":41,"type":"dance"}');
    expect(await c.waitFor((f) => f.type === "reply" && f.id === 41)).toMatchObject({ ok: false, error: { code: "unknown_type" } });
    c.sendRaw('{"id":42,"type":"subscribe"}');
    expect(await c.waitFor((f) => f.type === "reply" && f.id === 42)).toMatchObject({ ok: false, error: { code: "bad_request" } });
    c.sendRaw('{"id":43,"type":"refresh"}');
    expect(await c.waitFor((f) => f.type === "reply" && f.id === 43)).toMatchObject({ ok: false, error: { code: "bad_request" } });
  });

  it("refuses binary frames without closing", async () => {
    const c = await client("liam");
    c.sendRaw(Buffer.from([1, 2, 3]));
    expect(await c.waitFor((f) => f.type === "error")).toMatchObject({ error: { code: "bad_request" } });
    expect(await c.request({ type: "ping" })).toMatchObject({ ok: true });
  });

  it("closes a socket that sends an oversized frame with 1009", async () => {
    const c = await client("mona");
    c.sendRaw(JSON.stringify({ type: "ping", id: 1, pad: "x".repeat(2000) }));
    expect((await c.closed).code).toBe(CloseCodes.messageTooBig.code);
  });

  it("keeps serving everyone else", async () => {
    const res = await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "race", event: "still_here", data: null });
    expect(res.status).toBe(200);
    await bystander.waitForMessage((m) => m.event === "still_here");
  });
});

describe("ping, refresh and expiry", () => {
  it("answers ping with the server time", async () => {
    const c = await client("nina");
    const before = Date.now();
    const reply = await c.request({ type: "ping" });
    expect(reply.ok).toBe(true);
    if (reply.ok && "serverTime" in reply) expect(reply.serverTime).toBeGreaterThanOrEqual(before - 1000);
    else throw new Error("ping reply without serverTime");
  });

  it("refreshes a token for the same user, refuses another user's and a bad one", async () => {
    const c = await client("oscar", { channels: ["vip"] });
    await c.subscribe("vip");
    const other = await c.request({ type: "refresh", token: token({ sub: "someone-else" }) });
    expect(other).toMatchObject({ ok: false, error: { code: "forbidden" } });
    const expired = await c.request({ type: "refresh", token: token({ sub: "oscar" }, { expiresIn: -10 }) });
    expect(expired).toMatchObject({ ok: false, error: { code: "invalid_token" } });
    // The new token drops the vip grant: the server unsubscribes it and says so.
    const refreshed = await c.request({ type: "refresh", token: token({ sub: "oscar" }, { expiresIn: 7200 }) });
    expect(refreshed).toMatchObject({ ok: true, unsubscribed: ["vip"] });
  });

  it("closes with 4001 when the token expires without a refresh", async () => {
    const c = await client("pia", {}, 2);
    const closed = await c.closed;
    expect(closed.code).toBe(CloseCodes.tokenExpired.code);
  });

  it("keeps a socket whose token was refreshed before expiry", async () => {
    const c = await client("quinn", {}, 2);
    expect(await c.request({ type: "refresh", token: token({ sub: "quinn" }, { expiresIn: 60 }) })).toMatchObject({ ok: true });
    // Past the first token's expiry, the socket still answers.
    await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "user:quinn", event: "later", data: null });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(await c.request({ type: "ping" })).toMatchObject({ ok: true });
  });
});
