/**
 * What only the raw `/ws` frame envelope has, on one real node: frames that
 * cannot be attributed to a request id, binary frames and the frame size
 * limit. A bystander client must keep receiving through all the bad input.
 * Requests, refusals, refresh and expiry are in the contract suite that runs
 * on both transports (transport-contract.test.ts).
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

async function client(sub: string): Promise<TestClient> {
  const c = await connect(node.wsUrl, { token: token({ sub }) });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  redis = await startRedis();
  node = await startGatewayNode({
    name: "proto",
    redisUrl: redis.url,
    redisPrefix: uniquePrefix("proto"),
    env: { MAX_FRAME_BYTES: "1024" },
  });
  bystander = await client("bystander");
  await bystander.subscribe("forecasts");
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await node?.stop();
  await redis?.stop();
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

  it("answers a frame with an id but no string type with a reply carrying the id", async () => {
    const c = await client("kate");
    c.sendRaw('{"id":41,"type":5}');
    expect(await c.waitFor((f) => f.type === "reply" && f.id === 41)).toEqual({ type: "reply", id: 41, ok: false, error: { code: "bad_request", message: "frame needs a string type" } });
    c.sendRaw('{"id":42}');
    expect(await c.waitFor((f) => f.type === "reply" && f.id === 42)).toMatchObject({ ok: false, error: { code: "bad_request" } });
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
    const res = await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts", event: "still_here", data: null });
    expect(res.status).toBe(200);
    await bystander.waitForMessage((m) => m.event === "still_here");
  });
});
