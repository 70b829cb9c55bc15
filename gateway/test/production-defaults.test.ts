/**
 * A node in production (the default) refuses what is only safe on a laptop:
 * the public development secret and publish key `npm start` uses (exit 78, a
 * configuration error, before it listens), and the development token route.
 * Development keeps both conveniences.
 */

import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_JWT_SECRET, DEV_PUBLISH_KEY } from "../../scripts/lib/dev-defaults.js";
import { gatewayEntryPoint } from "../../scripts/lib/gateway.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startGatewayNode, TEST_JWT_SECRET, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { connect } from "./support/ws-client.js";

/** EX_CONFIG from sysexits.h: what the node exits with on a configuration error. */
const EX_CONFIG = 78;

/** Runs a node that must fail its configuration; it never gets as far as Redis. */
function startWithConfig(env: Readonly<Record<string, string>>): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [gatewayEntryPoint()], {
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", CLOCK_ENABLED: "false", REDIS_URL: "redis://127.0.0.1:1", ...env },
    encoding: "utf8",
    timeout: 15_000,
  });
  return { status: result.status, stderr: result.stderr };
}

let redis: RedisHandle;
let production: GatewayNode;
let development: GatewayNode;

beforeAll(async () => {
  redis = await startRedis();
  const prefix = uniquePrefix("prod");
  [production, development] = await Promise.all([
    startGatewayNode({ name: "prod", redisUrl: redis.url, redisPrefix: prefix }),
    startGatewayNode({ name: "dev", redisUrl: redis.url, redisPrefix: prefix, env: { GATEWAY_ENV: "development", JWT_SECRET: DEV_JWT_SECRET, PUBLISH_KEY: DEV_PUBLISH_KEY } }),
  ]);
});

afterAll(async () => {
  await Promise.all([production?.stop(), development?.stop()]);
  await redis?.stop();
});

describe("production refuses development conveniences", () => {
  it("exits 78 with the development secret, naming JWT_SECRET", () => {
    const run = startWithConfig({ JWT_SECRET: DEV_JWT_SECRET, PUBLISH_KEY: TEST_PUBLISH_KEY });
    expect(run.status).toBe(EX_CONFIG);
    expect(run.stderr).toContain("gateway: invalid configuration: JWT_SECRET: is the public development value");
  });

  it("exits 78 with the development publish key, naming PUBLISH_KEY, also when production is explicit", () => {
    const run = startWithConfig({ GATEWAY_ENV: "production", JWT_SECRET: TEST_JWT_SECRET, PUBLISH_KEY: DEV_PUBLISH_KEY });
    expect(run.status).toBe(EX_CONFIG);
    expect(run.stderr).toContain("gateway: invalid configuration: PUBLISH_KEY: is the public development value");
  });

  it("has no development token route in production", async () => {
    const res = await fetch(`${production.httpUrl}/v1/dev/token?sub=alice`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: "not_found", message: "no such route" } });
  });
});

describe("development keeps them", () => {
  it("starts with the development credentials and issues development tokens its sockets accept", async () => {
    const res = await fetch(`${development.httpUrl}/v1/dev/token?sub=alice`);
    expect(res.status).toBe(200);
    const grant = (await res.json()) as { token: string; sub: string };
    expect(grant.sub).toBe("alice");
    const client = await connect(development.wsUrl, { token: grant.token });
    expect(client.welcome).toMatchObject({ user: "alice" });
    await client.close();
  });

  it("refuses a development sub outside the documented set", async () => {
    const res = await fetch(`${development.httpUrl}/v1/dev/token?sub=${encodeURIComponent("alice:orders")}`);
    expect(res.status).toBe(400);
  });
});
