/**
 * Scripts on the pipelining connections (the connection quota, history
 * reads) go out as EVALSHA in batches, and are loaded again when Redis has
 * forgotten them: after SCRIPT FLUSH (as after a restart without
 * persistence) the next calls still answer, concurrent ones included. On a
 * Redis Cluster, each call's slot decides the master, and the script ends up
 * cached on every master that ran it.
 */

import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startRedisCluster } from "../../scripts/lib/redis-cluster.js";
import { PipelinedScript } from "../src/redis/pipelined-script.js";

let redis: RedisHandle;
let client: Redis;
let admin: Redis;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url, { enableAutoPipelining: true });
  admin = new Redis(redis.url);
});

afterAll(async () => {
  client?.disconnect();
  admin?.disconnect();
  await redis?.stop();
});

const ECHO = new PipelinedScript("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}", 1);

describe("PipelinedScript", () => {
  it("answers with strings, or with Buffers for runBuffer", async () => {
    expect(await ECHO.run(client, "key", "value", 41)).toEqual(["key", "value", 42]);
    const binary = (await ECHO.runBuffer(client, "key", "value", 1)) as unknown[];
    expect(Buffer.isBuffer(binary[0])).toBe(true);
    expect(binary.map((part) => (Buffer.isBuffer(part) ? part.toString() : part))).toEqual(["key", "value", 2]);
  });

  it("loads the script again after Redis forgot it, for every call of a batch", async () => {
    await ECHO.run(client, "warm", "up", 0);
    await admin.script("FLUSH");
    expect(await admin.script("EXISTS", ECHO.sha)).toEqual([0]);
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => ECHO.run(client, `k${i}`, "v", i)));
    expect(replies).toEqual(Array.from({ length: 50 }, (_, i) => [`k${i}`, "v", i + 1]));
    expect(await admin.script("EXISTS", ECHO.sha)).toEqual([1]);
  });

  it("sends EVALSHA, not the script's source, once the script is loaded", async () => {
    await ECHO.run(client, "warm", "up", 0);
    await admin.config("RESETSTAT");
    await Promise.all(Array.from({ length: 100 }, (_, i) => ECHO.run(client, `k${i}`, "v", i)));
    const stats = (await admin.info("commandstats")).split("\r\n");
    expect(stats.find((line) => line.startsWith("cmdstat_evalsha:"))).toMatch(/calls=100,/);
    expect(stats.find((line) => line.startsWith("cmdstat_eval:"))).toBeUndefined();
  });

  it("passes other errors through", async () => {
    const failing = new PipelinedScript("return redis.call('INCR', KEYS[1])", 1);
    await client.set("text", "not a number");
    await expect(failing.run(client, "text")).rejects.toThrow(/not an integer/);
  });

  it("runs on a Redis Cluster: every call on its slot's master, the script loaded where it ran", async () => {
    const cluster = await startRedisCluster({ masters: 3 });
    const seeds = cluster.seeds.split(",").map((seed) => {
      const [host, port] = seed.split(":");
      return { host: host ?? "127.0.0.1", port: Number(port) };
    });
    // Without auto-pipelining, as the gateway opens Cluster roles (see RedisRoleOptions.autoPipelining).
    const clients = new Cluster(seeds);
    const masters: Redis[] = [];
    try {
      // Keys over many slots, so every master gets calls; the first on each is answered NOSCRIPT.
      const replies = await Promise.all(Array.from({ length: 60 }, (_, i) => ECHO.run(clients, `spread-${i}`, "v", i)));
      expect(replies).toEqual(Array.from({ length: 60 }, (_, i) => [`spread-${i}`, "v", i + 1]));
      for (const port of await cluster.masterPorts()) masters.push(new Redis({ host: "127.0.0.1", port }));
      expect(masters).toHaveLength(3);
      for (const master of masters) expect(await master.script("EXISTS", ECHO.sha)).toEqual([1]);
      const binary = (await ECHO.runBuffer(clients, "spread-0", "v", 1)) as unknown[];
      expect(Buffer.isBuffer(binary[0])).toBe(true);
    } finally {
      for (const master of masters) master.disconnect();
      clients.disconnect();
      await cluster.stop();
    }
  }, 60_000);
});
