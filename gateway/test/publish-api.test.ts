/**
 * POST /v1/publish: the key, the body shapes, the size limit, the round
 * clock's own channel, and that a refused request publishes nothing.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { connect, publish, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let node: GatewayNode;
let watcher: TestClient;

async function post(body: string | Uint8Array<ArrayBuffer>, headers: Record<string, string> = { authorization: `Bearer ${TEST_PUBLISH_KEY}` }): Promise<{ status: number; json: { error?: { code: string; message: string } } }> {
  const res = await fetch(`${node.httpUrl}/v1/publish`, { method: "POST", headers, body });
  return { status: res.status, json: (await res.json()) as { error?: { code: string; message: string } } };
}

beforeAll(async () => {
  redis = await startRedis();
  node = await startGatewayNode({ name: "pub", redisUrl: redis.url, redisPrefix: uniquePrefix("pub"), env: { PUBLISH_MAX_BODY_BYTES: "4096", PUBLISH_MAX_BATCH: "5" } });
  watcher = await connect(node.wsUrl, { token: token({ sub: "watcher" }) });
  await watcher.subscribe("forecasts");
  await watcher.subscribe("race");
});

afterAll(async () => {
  await watcher?.close();
  await node?.stop();
  await redis?.stop();
});

describe("POST /v1/publish", () => {
  it("answers 401 without the key or with a wrong one", async () => {
    const body = JSON.stringify({ channel: "forecasts", event: "x", data: 1 });
    expect((await post(body, {})).status).toBe(401);
    const wrong = await post(body, { authorization: "Bearer wrong-key-0123456789" });
    expect(wrong).toMatchObject({ status: 401, json: { error: { code: "unauthorized" } } });
  });

  const invalid: Array<[string, string]> = [
    ["not JSON", "{oops"],
    ["an array", "[]"],
    ["no channel", JSON.stringify({ event: "x", data: 1 })],
    ["a bad channel name", JSON.stringify({ channel: "has space", event: "x", data: 1 })],
    ["no event", JSON.stringify({ channel: "forecasts", data: 1 })],
    ["a bad event name", JSON.stringify({ channel: "forecasts", event: "a/b", data: 1 })],
    ["no data", JSON.stringify({ channel: "forecasts", event: "x" })],
    ["an empty batch", JSON.stringify({ messages: [] })],
    ["a batch over the limit", JSON.stringify({ messages: Array.from({ length: 6 }, () => ({ channel: "forecasts", event: "x", data: 1 })) })],
    ["a batch with one bad message", JSON.stringify({ messages: [{ channel: "forecasts", event: "x", data: 1 }, { channel: "forecasts" }] })],
    ["an empty body", ""],
    // JSON.parse reads these as ±Infinity, which would be delivered as null.
    ["a number past the double range", '{"channel":"forecasts","event":"x","data":{"p":[1,1e400]}}'],
    ["a negative number past the double range", '{"messages":[{"channel":"forecasts","event":"x","data":-2e308}]}'],
  ];
  for (const [name, body] of invalid) {
    it(`answers 400 with a reason for ${name}`, async () => {
      const res = await post(body);
      expect(res.status).toBe(400);
      expect(res.json.error?.code).toBe("bad_request");
      expect(res.json.error?.message.length).toBeGreaterThan(5);
    });
  }

  it("answers 400 for a body that is not UTF-8, which decoding would publish with U+FFFD in place of the bytes", async () => {
    const body = Buffer.concat([Buffer.from('{"channel":"forecasts","event":"x","data":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
    expect(await post(new Uint8Array(body))).toEqual({ status: 400, json: { error: { code: "bad_request", message: "body is not valid UTF-8" } } });
  });

  it("answers 413 for a body over the limit, declared or streamed", async () => {
    const big = JSON.stringify({ channel: "forecasts", event: "x", data: "y".repeat(5000) });
    expect((await post(big)).status).toBe(413);
    // A chunked body has no content-length: the limit applies while reading.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(Buffer.from(big));
        controller.close();
      },
    });
    const res = await fetch(`${node.httpUrl}/v1/publish`, { method: "POST", headers: { authorization: `Bearer ${TEST_PUBLISH_KEY}` }, body: stream, duplex: "half" } as RequestInit);
    expect(res.status).toBe(413);
  });

  it("answers 403 for the round clock's channel, alone or in a batch: no backend key speaks for the clock", async () => {
    const forged = { channel: "race", event: "round_finished", data: { roundId: 7, result: [3, 1, 2] } };
    expect(await post(JSON.stringify(forged))).toEqual({ status: 403, json: { error: { code: "forbidden", message: "body.channel race is published only by the round clock" } } });
    const batch = await post(JSON.stringify({ messages: [{ channel: "forecasts", event: "x", data: 1 }, forged] }));
    expect(batch).toEqual({ status: 403, json: { error: { code: "forbidden", message: "messages[1].channel race is published only by the round clock" } } });
    expect(await metricValue(node.httpUrl, "gateway_publish_failures_total", { reason: "forbidden" })).toBe(2);
  });

  it("publishes nothing for refused requests", async () => {
    const res = await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts", event: "after_refusals", data: null });
    expect(res).toMatchObject({ status: 200, json: { offset: 1 } });
    await watcher.waitForMessage((m) => m.event === "after_refusals");
    expect(watcher.messages("forecasts")).toHaveLength(1);
    expect(watcher.messages("race")).toEqual([]);
  });

  it("publishes a batch atomically and in order", async () => {
    const res = await publish(node.httpUrl, TEST_PUBLISH_KEY, {
      messages: [
        { channel: "forecasts", event: "b1", data: 1 },
        { channel: "forecasts:BTC", event: "b2", data: 2 },
        { channel: "forecasts", event: "b3", data: 3 },
      ],
    });
    expect(res.status).toBe(200);
    const results = (res.json as { results: Array<{ offset: number; epoch: string }> }).results;
    expect(results.map((r) => r.offset)).toEqual([2, 1, 3]);
    await watcher.waitForMessage((m) => m.event === "b3");
    expect(watcher.messages("forecasts").map((m) => m.event)).toEqual(["after_refusals", "b1", "b3"]);
  });

  it("answers 404 with a JSON error for unknown routes", async () => {
    const res = await fetch(`${node.httpUrl}/v2/nothing`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: "not_found" } });
  });
});
