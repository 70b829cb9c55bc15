/**
 * permessage-deflate on `/ws` (WS_COMPRESSION): only clients that offer it get
 * compressed frames, the bytes they decode are the bytes every other client
 * gets, frames under WS_COMPRESSION_MIN_BYTES stay uncompressed, compressed
 * client frames are read, and with the default (off) nothing is negotiated.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { connect, publish, type TestClient } from "./support/ws-client.js";

const MIN_BYTES = 512;

let redis: RedisHandle;
const nodes = new Map<string, GatewayNode>();
const clients: TestClient[] = [];

/** A forecast of ~3 KB: repetitive JSON, as real feeds are. */
function forecast(seq: number): unknown {
  return { seq, asset: "BTC", horizon: Array.from({ length: 40 }, (_, i) => ({ minute: i, p10: 61_000 + i * 3, p50: 61_200 + i * 4, p90: 61_400 + i * 5, volume: 1000 + i })) };
}

/** Wire bytes the two clients read while `action` ran and its frame arrived. */
async function wireBytesDuring(clients: readonly [TestClient, TestClient], event: string, action: () => Promise<void>): Promise<[number, number]> {
  const [a, b] = clients;
  const before = [a.wireBytesRead(), b.wireBytesRead()] as const;
  await action();
  await Promise.all(clients.map((c) => c.waitForMessage((m) => m.event === event)));
  return [a.wireBytesRead() - before[0], b.wireBytesRead() - before[1]];
}

async function pair(node: GatewayNode, label: string): Promise<{ offering: TestClient; plain: TestClient }> {
  // threshold 0: the offering client compresses its own frames too, so the node must read them.
  const offering = await connect(node.wsUrl, { token: token({ sub: `${label}-offering` }), perMessageDeflate: { threshold: 0 } });
  const plain = await connect(node.wsUrl, { token: token({ sub: `${label}-plain` }), perMessageDeflate: false });
  clients.push(offering, plain);
  await Promise.all([offering.subscribe("forecasts:BTC"), plain.subscribe("forecasts:BTC")]);
  return { offering, plain };
}

beforeAll(async () => {
  redis = await startRedis();
  for (const mode of ["off", "shared", "dedicated-4kb"]) {
    // One prefix per node: each publish stays with its node's clients.
    const env: Record<string, string> = mode === "off" ? {} : { WS_COMPRESSION: mode, WS_COMPRESSION_MIN_BYTES: String(MIN_BYTES) };
    nodes.set(mode, await startGatewayNode({ name: `zip-${mode}`, redisUrl: redis.url, redisPrefix: uniquePrefix(`zip-${mode}`), env }));
  }
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([...nodes.values()].map((node) => node.stop()));
  await redis?.stop();
});

describe("permessage-deflate on /ws", () => {
  for (const mode of ["shared", "dedicated-4kb"]) {
    it(`${mode}: compresses large frames for clients that offer it, and only for them`, async () => {
      const node = nodes.get(mode)!;
      const { offering, plain } = await pair(node, mode);
      expect(offering.socket.extensions).toContain("permessage-deflate");
      expect(plain.socket.extensions).toBe("");

      const [zipped, unzipped] = await wireBytesDuring([offering, plain], "big", async () => {
        expect((await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts:BTC", event: "big", data: forecast(1) })).status).toBe(200);
      });
      const bigFrame = plain.rawMessages.at(-1)!;
      expect(bigFrame.length).toBeGreaterThan(2000);
      // Decompressed, it is the very frame the plain client got.
      expect(offering.rawMessages.at(-1)).toBe(bigFrame);
      expect(unzipped).toBeGreaterThanOrEqual(bigFrame.length);
      expect(zipped).toBeLessThan(unzipped / 3);

      const [small, smallPlain] = await wireBytesDuring([offering, plain], "small", async () => {
        expect((await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts:BTC", event: "small", data: { seq: 2 } })).status).toBe(200);
      });
      expect(plain.rawMessages.at(-1)!.length).toBeLessThan(MIN_BYTES);
      expect(offering.rawMessages.at(-1)).toBe(plain.rawMessages.at(-1));
      // Under WS_COMPRESSION_MIN_BYTES: sent as is to both.
      expect(small).toBe(smallPlain);

      // Compressed client frames are read: the subscribes above were compressed, and so is this ping.
      expect(await offering.request({ type: "ping" })).toMatchObject({ ok: true });
    });
  }

  it("off (the default): negotiates nothing and sends every frame as is", async () => {
    const node = nodes.get("off")!;
    const { offering, plain } = await pair(node, "off");
    expect(offering.socket.extensions).toBe("");
    const [offered, notOffered] = await wireBytesDuring([offering, plain], "big", async () => {
      expect((await publish(node.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts:BTC", event: "big", data: forecast(3) })).status).toBe(200);
    });
    expect(offering.rawMessages.at(-1)).toBe(plain.rawMessages.at(-1));
    expect(offered).toBe(notOffered);
  });
});
