/**
 * Every bad token is refused with HTTP 401 before the upgrade: no socket, no
 * welcome. Runs against real nodes, one with an HMAC secret and one with an
 * RSA public key.
 */

import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import jwt from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { BEARER_SUBPROTOCOL_PREFIX, WS_SUBPROTOCOL } from "../../shared/src/protocol.js";
import { badTokens, hsRsConfusionToken } from "./support/bad-tokens.js";
import { startGatewayNode, TEST_JWT_SECRET, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { tryConnect } from "./support/ws-client.js";

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();

let redis: RedisHandle;
let hsNode: GatewayNode;
let rsNode: GatewayNode;
let keyDir: string;

beforeAll(async () => {
  redis = await startRedis();
  keyDir = await mkdtemp(path.join(os.tmpdir(), "gw-keys-"));
  const keyFile = path.join(keyDir, "jwt.pub.pem");
  await writeFile(keyFile, publicPem);
  const prefix = uniquePrefix("auth");
  [hsNode, rsNode] = await Promise.all([
    startGatewayNode({ name: "hs-node", redisUrl: redis.url, redisPrefix: prefix, env: { JWT_AUDIENCE: "gateway", JWT_ISSUER: "gw-tests", JWT_CLOCK_TOLERANCE_S: "0" } }),
    startGatewayNode({ name: "rs-node", redisUrl: redis.url, redisPrefix: prefix, env: { JWT_SECRET: "", JWT_PUBLIC_KEY_FILE: keyFile } }),
  ]);
});

afterAll(async () => {
  await Promise.all([hsNode?.stop(), rsNode?.stop()]);
  await redis?.stop();
  await rm(keyDir, { recursive: true, force: true });
});

describe("authentication before upgrade", () => {
  const cases = badTokens({ secret: TEST_JWT_SECRET, rsaPrivateKey: privateKey, rsaPublicKeyPem: publicPem, audience: "gateway", issuer: "gw-tests" });

  for (const bad of cases) {
    it(`refuses ${bad.name} with 401`, async () => {
      const outcome = await tryConnect(hsNode.wsUrl, bad.token === undefined ? {} : { token: bad.token });
      expect(outcome.kind).toBe("refused");
      if (outcome.kind !== "refused") return;
      expect(outcome.status).toBe(401);
      expect(JSON.parse(outcome.body)).toMatchObject({ error: { code: "invalid_token" } });
    });
  }

  it("counts refusals by reason", async () => {
    expect(await metricValue(hsNode.httpUrl, "gateway_auth_failures_total", { reason: "expired" })).toBeGreaterThanOrEqual(1);
    expect(await metricValue(hsNode.httpUrl, "gateway_auth_failures_total", { reason: "algorithm" })).toBeGreaterThanOrEqual(3);
    expect(await metricValue(hsNode.httpUrl, "gateway_connections")).toBe(0);
  });

  it("accepts a good token from the header and from the query string", async () => {
    const good = token({ sub: "alice", aud: "gateway", iss: "gw-tests" });
    for (const tokenInQuery of [false, true]) {
      const outcome = await tryConnect(hsNode.wsUrl, { token: good, tokenInQuery });
      expect(outcome.kind).toBe("open");
      if (outcome.kind === "open") {
        expect(outcome.client.welcome).toMatchObject({ type: "welcome", node: "hs-node", user: "alice" });
        await outcome.client.close();
      }
    }
  });

  describe("the token as a subprotocol, for browsers", () => {
    const good = (): string => token({ sub: "carol", aud: "gateway", iss: "gw-tests" });

    it(`accepts [${WS_SUBPROTOCOL}, ${BEARER_SUBPROTOCOL_PREFIX}<jwt>] and answers ${WS_SUBPROTOCOL} alone, never the token`, async () => {
      const outcome = await tryConnect(hsNode.wsUrl, { protocols: [WS_SUBPROTOCOL, `${BEARER_SUBPROTOCOL_PREFIX}${good()}`] });
      expect(outcome.kind).toBe("open");
      if (outcome.kind !== "open") return;
      expect(outcome.client.socket.protocol).toBe(WS_SUBPROTOCOL);
      expect(outcome.client.welcome).toMatchObject({ user: "carol" });
      await outcome.client.close();
    });

    it(`answers ${WS_SUBPROTOCOL} to a client that offers it among others, with the token in the header`, async () => {
      const outcome = await tryConnect(hsNode.wsUrl, { token: good(), protocols: ["chat", WS_SUBPROTOCOL] });
      expect(outcome.kind).toBe("open");
      if (outcome.kind !== "open") return;
      expect(outcome.client.socket.protocol).toBe(WS_SUBPROTOCOL);
      await outcome.client.close();
    });

    it("refuses a bad token in the subprotocol with 401", async () => {
      const outcome = await tryConnect(hsNode.wsUrl, { protocols: [WS_SUBPROTOCOL, `${BEARER_SUBPROTOCOL_PREFIX}${token({ sub: "carol" }, { expiresIn: -5 })}`] });
      expect(outcome).toMatchObject({ kind: "refused", status: 401 });
    });

    it(`refuses a bearer subprotocol without ${WS_SUBPROTOCOL}, or two of them, with 400`, async () => {
      for (const protocols of [[`${BEARER_SUBPROTOCOL_PREFIX}${good()}`], [WS_SUBPROTOCOL, `${BEARER_SUBPROTOCOL_PREFIX}${good()}`, `${BEARER_SUBPROTOCOL_PREFIX}${good()}x`]]) {
        const outcome = await tryConnect(hsNode.wsUrl, { protocols });
        expect(outcome.kind).toBe("refused");
        if (outcome.kind !== "refused") return;
        expect(outcome.status).toBe(400);
        expect(JSON.parse(outcome.body)).toMatchObject({ error: { code: "bad_request" } });
      }
    });
  });

  it("on an RS256 node, refuses HS/RS confusion and alg none, accepts RS256", async () => {
    const confused = await tryConnect(rsNode.wsUrl, { token: hsRsConfusionToken(publicPem) });
    expect(confused).toMatchObject({ kind: "refused", status: 401 });
    const hsSigned = await tryConnect(rsNode.wsUrl, { token: token({ sub: "x" }) });
    expect(hsSigned).toMatchObject({ kind: "refused", status: 401 });
    const none = await tryConnect(rsNode.wsUrl, { token: `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from('{"sub":"x"}').toString("base64url")}.` });
    expect(none).toMatchObject({ kind: "refused", status: 401 });
    const good = await tryConnect(rsNode.wsUrl, { token: jwt.sign({ sub: "rsa-user" }, privateKey, { algorithm: "RS256", expiresIn: 60 }) });
    expect(good.kind).toBe("open");
    if (good.kind === "open") await good.client.close();
  });
});
