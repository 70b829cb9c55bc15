import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CONFIG_VARIABLES, ConfigError, DEVELOPMENT_ROUND_SEED_KEY, loadConfig } from "../../src/config.js";
import { DEV_JWT_SECRET, DEV_PUBLISH_KEY } from "../../../scripts/lib/dev-defaults.js";
import { repoRoot } from "../../../scripts/lib/paths.js";

const base = { JWT_SECRET: "0123456789abcdef", PUBLISH_KEY: "publish-key-0123456789", CLOCK_ENABLED: "false" };

function failure(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("applies defaults", () => {
    const config = loadConfig(base);
    expect(config).toMatchObject({ port: 9001, redisPrefix: "gw", maxFrameBytes: 16384, idleTimeoutSeconds: 60, env: "production" });
    expect(config.jwt.algorithms).toEqual(["HS256"]);
  });

  const bad: Array<[string, Record<string, string>]> = [
    ["PUBLISH_KEY", { JWT_SECRET: base.JWT_SECRET }],
    ["PUBLISH_KEY", { ...base, PUBLISH_KEY: "short" }],
    ["JWT_SECRET", { PUBLISH_KEY: base.PUBLISH_KEY }],
    ["JWT_SECRET", { ...base, JWT_SECRET: "short" }],
    ["JWT_SECRET", { ...base, JWT_PUBLIC_KEY_FILE: "/etc/hostname" }],
    ["JWT_PUBLIC_KEY_FILE", { PUBLISH_KEY: base.PUBLISH_KEY, CLOCK_ENABLED: "false", JWT_PUBLIC_KEY_FILE: "/nonexistent/key.pem" }],
    ["DATABASE_URL", { ...base, CLOCK_ENABLED: "true" }],
    ["DATABASE_URL", { ...base, DATABASE_URL: "mysql://x" }],
    ["CLOCK_ENABLED", { ...base, CLOCK_ENABLED: "yes" }],
    ["PG_SCHEMA", { ...base, DATABASE_URL: "postgres://h/db", PG_SCHEMA: "Bad-Name" }],
    ["ROUND_WAIT_MS", { ...base, DATABASE_URL: "postgres://h/db", CLOCK_ENABLED: "true", ROUND_WAIT_MS: "0" }],
    ["ROUND_SEED_KEY", { ...base, DATABASE_URL: "postgres://h/db", CLOCK_ENABLED: "true" }],
    ["ROUND_SEED_KEY", { ...base, DATABASE_URL: "postgres://h/db", CLOCK_ENABLED: "true", ROUND_SEED_KEY: "too-short-for-a-key" }],
    ["ODDS_MARGIN_BP", { ...base, DATABASE_URL: "postgres://h/db", CLOCK_ENABLED: "true", ROUND_SEED_KEY: "k".repeat(32), ODDS_MARGIN_BP: "6000" }],
    ["JWT_ALGORITHMS", { ...base, JWT_ALGORITHMS: "none" }],
    ["JWT_ALGORITHMS", { ...base, JWT_ALGORITHMS: "RS256" }],
    ["PORT", { ...base, PORT: "http" }],
    ["PORT", { ...base, PORT: "70000" }],
    ["IDLE_TIMEOUT_S", { ...base, IDLE_TIMEOUT_S: "5" }],
    ["REDIS_URL", { ...base, REDIS_URL: "http://localhost" }],
    ["REDIS_PREFIX", { ...base, REDIS_PREFIX: "has space" }],
    ["LOG_LEVEL", { ...base, LOG_LEVEL: "loud" }],
    ["GATEWAY_ENV", { ...base, GATEWAY_ENV: "staging" }],
    ["NODE_ID", { ...base, NODE_ID: "node/1" }],
    ["JWT_MAX_LIFETIME_S", { ...base, JWT_MAX_LIFETIME_S: "10" }],
    ["JWT_MAX_LIFETIME_S", { ...base, GATEWAY_ENV: "development", JWT_MAX_LIFETIME_S: "forever" }],
    // The development credentials `npm start` uses are public: production (the default) refuses them.
    ["JWT_SECRET", { ...base, JWT_SECRET: DEV_JWT_SECRET }],
    ["PUBLISH_KEY", { ...base, PUBLISH_KEY: DEV_PUBLISH_KEY }],
    ["JWT_SECRET", { ...base, GATEWAY_ENV: "production", JWT_SECRET: DEV_JWT_SECRET }],
    ["METRIC_NAMESPACES", { ...base, METRIC_NAMESPACES: "scores:1" }],
    ["METRIC_NAMESPACES", { ...base, METRIC_NAMESPACES: "other" }],
    ["METRIC_NAMESPACES", { ...base, METRIC_NAMESPACES: Array.from({ length: 51 }, (_, i) => `n${i}`).join(",") }],
    ["INGEST_MAX_ATTEMPTS", { ...base, INGEST_MAX_ATTEMPTS: "0" }],
    ["TRUSTED_PROXIES", { ...base, TRUSTED_PROXIES: "10.0.0.0/8,nginx.internal" }],
    ["TRUSTED_PROXIES", { ...base, TRUSTED_PROXIES: "10.0.0.0/40" }],
    ["CLIENT_FRAMES_PER_S", { ...base, CLIENT_FRAMES_PER_S: "0" }],
    ["SUBSCRIBE_BURST", { ...base, SUBSCRIBE_BURST: "0" }],
    ["MAX_CONNECTIONS_PER_USER", { ...base, MAX_CONNECTIONS_PER_USER: "-1" }],
    // Sentinel and Cluster: one way to reach Redis at a time, each fully described.
    ["REDIS_SENTINEL_MASTER", { ...base, REDIS_SENTINELS: "10.0.0.1:26379" }],
    ["REDIS_SENTINELS", { ...base, REDIS_SENTINELS: "10.0.0.1:26379", REDIS_SENTINEL_MASTER: "gw", REDIS_URL: "redis://10.0.0.9:6379" }],
    ["REDIS_SENTINELS", { ...base, REDIS_SENTINELS: "10.0.0.1", REDIS_SENTINEL_MASTER: "gw" }],
    ["REDIS_SENTINELS", { ...base, REDIS_SENTINELS: "10.0.0.1:26379,10.0.0.1:26379", REDIS_SENTINEL_MASTER: "gw" }],
    ["REDIS_SENTINELS", { ...base, REDIS_SENTINELS: "10.0.0.1:26379", REDIS_SENTINEL_MASTER: "gw", REDIS_CLUSTER_NODES: "10.0.0.2:6379" }],
    ["REDIS_SENTINEL_MASTER", { ...base, REDIS_SENTINEL_MASTER: "gw" }],
    ["REDIS_SENTINEL_PASSWORD", { ...base, REDIS_SENTINEL_PASSWORD: "secret" }],
    ["REDIS_CLUSTER_NODES", { ...base, REDIS_CLUSTER_NODES: "10.0.0.2:6379", REDIS_URL: "redis://10.0.0.9:6379" }],
    ["REDIS_CLUSTER_NODES", { ...base, REDIS_CLUSTER_NODES: "10.0.0.2:0" }],
    ["REDIS_PASSWORD", { ...base, REDIS_PASSWORD: "secret" }],
    ["REDIS_WAIT_REPLICAS", { ...base, REDIS_WAIT_REPLICAS: "-1" }],
  ];
  for (const [variable, env] of bad) {
    it(`names ${variable} when it is wrong (${JSON.stringify(env).slice(0, 60)})`, () => {
      expect(failure(env).variable).toBe(variable);
    });
  }

  it("reaches Redis through Sentinels or a Cluster when told to", () => {
    expect(loadConfig({ ...base, REDIS_SENTINELS: "10.0.0.1:26379, [fd00::2]:26380", REDIS_SENTINEL_MASTER: "gw", REDIS_PASSWORD: "p", REDIS_SENTINEL_PASSWORD: "s" }).redis).toEqual({
      kind: "sentinel",
      sentinels: [
        { host: "10.0.0.1", port: 26379 },
        { host: "fd00::2", port: 26380 },
      ],
      masterName: "gw",
      sentinelPassword: "s",
      password: "p",
    });
    expect(loadConfig({ ...base, REDIS_CLUSTER_NODES: "redis-0.redis:6379,redis-1.redis:6379", REDIS_WAIT_REPLICAS: "1" })).toMatchObject({
      redis: { kind: "cluster", nodes: [{ host: "redis-0.redis", port: 6379 }, { host: "redis-1.redis", port: 6379 }] },
      redisWaitReplicas: 1,
    });
    // REDIS_URL left at its default (a compose file that sets it for every node) is no conflict.
    expect(loadConfig({ ...base, REDIS_URL: "redis://127.0.0.1:6379", REDIS_CLUSTER_NODES: "10.0.0.2:6379" }).redis.kind).toBe("cluster");
  });

  it("accepts the development credentials in development, where tokens need no exp", () => {
    const config = loadConfig({ ...base, GATEWAY_ENV: "development", JWT_SECRET: DEV_JWT_SECRET, PUBLISH_KEY: DEV_PUBLISH_KEY });
    expect(config.jwt.maxLifetimeSeconds).toBeNull();
    expect(config.publishKey).toBe(DEV_PUBLISH_KEY);
  });

  it("bounds token lifetimes in production, a day by default", () => {
    expect(loadConfig(base).jwt.maxLifetimeSeconds).toBe(86_400);
    expect(loadConfig({ ...base, JWT_MAX_LIFETIME_S: "3600" }).jwt.maxLifetimeSeconds).toBe(3600);
  });

  it("trusts the default proxies, the configured ones, or with `none` no X-Forwarded-For at all", () => {
    const forwardedBy = (env: Record<string, string>, peer: string): string | undefined => loadConfig({ ...base, ...env }).limits.trustedProxies.clientAddress(peer, "203.0.113.7")?.text;
    expect(forwardedBy({}, "127.0.0.1")).toBe("203.0.113.7");
    expect(forwardedBy({}, "172.20.0.4")).toBe("203.0.113.7");
    expect(forwardedBy({}, "198.51.100.1")).toBe("198.51.100.1");
    expect(forwardedBy({ TRUSTED_PROXIES: "198.51.100.0/24" }, "198.51.100.1")).toBe("203.0.113.7");
    expect(forwardedBy({ TRUSTED_PROXIES: "198.51.100.0/24" }, "127.0.0.1")).toBe("127.0.0.1");
    expect(forwardedBy({ TRUSTED_PROXIES: "none" }, "127.0.0.1")).toBe("127.0.0.1");
  });

  it("needs ROUND_SEED_KEY only to drive rounds in production; development falls back to its fixed key", () => {
    const clock = { ...base, DATABASE_URL: "postgres://h/db", CLOCK_ENABLED: "true" };
    expect(loadConfig({ ...clock, ROUND_SEED_KEY: "s".repeat(32) }).clock?.seedSecret).toBe("s".repeat(32));
    expect(loadConfig({ ...clock, GATEWAY_ENV: "development" }).clock?.seedSecret).toBe(DEVELOPMENT_ROUND_SEED_KEY);
    expect(loadConfig({ ...base, DATABASE_URL: "postgres://h/db" }).clock).toBeNull();
  });

  it("derives the algorithm from a public key and refuses HMAC algorithms with it", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "gw-config-"));
    const file = path.join(dir, "ec.pem");
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    writeFileSync(file, publicKey.export({ type: "spki", format: "pem" }));
    const keyOnly = { PUBLISH_KEY: base.PUBLISH_KEY, CLOCK_ENABLED: "false", JWT_PUBLIC_KEY_FILE: file };
    expect(loadConfig(keyOnly).jwt.algorithms).toEqual(["ES256"]);
    expect(failure({ ...keyOnly, JWT_ALGORITHMS: "HS256" }).variable).toBe("JWT_ALGORITHMS");
  });

  it("is the README's configuration table, row by row: names, defaults and meanings", () => {
    const readme = readFileSync(path.join(repoRoot(), "README.md"), "utf8").split("\n");
    const section = readme.indexOf("## Configuration");
    const header = readme.indexOf("| variable | default | meaning |", section);
    expect(section).toBeGreaterThan(-1);
    expect(header).toBeGreaterThan(-1);
    const end = readme.findIndex((line, i) => i > header && !line.startsWith("|"));
    const documented = readme.slice(header + 2, end);
    const expected = CONFIG_VARIABLES.map((variable) => `| \`${variable.name}\` | ${variable.documentedDefault} | ${variable.description} |`);
    // On failure the diff shows the rows to paste into README.md.
    expect(documented).toEqual(expected);
  });

  it("uses the documented defaults", () => {
    const config = loadConfig({ ...base, CLOCK_ENABLED: "true", DATABASE_URL: "postgres://h/db", ROUND_SEED_KEY: "s".repeat(32) });
    const documented = new Map(CONFIG_VARIABLES.map((variable) => [variable.name, variable.documentedDefault]));
    const literal = (name: string): string => /^`(.*)`$/.exec(documented.get(name) ?? "")?.[1] ?? `no literal default for ${name}`;
    expect(String(config.port)).toBe(literal("PORT"));
    expect(config.host).toBe(literal("HOST"));
    expect(config.redis).toEqual({ kind: "standalone", url: literal("REDIS_URL") });
    expect(String(config.redisWaitReplicas)).toBe(literal("REDIS_WAIT_REPLICAS"));
    expect(String(config.postgres?.poolMax)).toBe(literal("PG_POOL_MAX"));
    expect(String(config.clock?.leaseTtlMs)).toBe(literal("CLOCK_LEASE_TTL_MS"));
    expect(String(config.clock?.oddsMarginBp)).toBe(literal("ODDS_MARGIN_BP"));
    expect(String(config.writer.maxBetAmount)).toBe(literal("BET_MAX_AMOUNT"));
    expect(String(config.ingest?.claimIdleMs)).toBe(literal("INGEST_CLAIM_IDLE_MS"));
    expect(String(config.ingest?.maxAttempts)).toBe(literal("INGEST_MAX_ATTEMPTS"));
    expect(String(config.limits.framesPerSecond)).toBe(literal("CLIENT_FRAMES_PER_S"));
    expect(String(config.limits.frameBurst)).toBe(literal("CLIENT_FRAME_BURST"));
    expect(String(config.limits.subscribesPerSecond)).toBe(literal("SUBSCRIBES_PER_S"));
    expect(String(config.limits.subscribeBurst)).toBe(literal("SUBSCRIBE_BURST"));
    expect(String(config.limits.maxConnectionsPerUser)).toBe(literal("MAX_CONNECTIONS_PER_USER"));
    expect(String(config.limits.maxCommandsInFlightPerUser)).toBe(literal("MAX_COMMANDS_IN_FLIGHT_PER_USER"));
    expect(String(config.limits.connectsPerAddressPerSecond)).toBe(literal("CONNECTS_PER_ADDRESS_PER_S"));
    expect(String(config.limits.connectBurstPerAddress)).toBe(literal("CONNECT_BURST_PER_ADDRESS"));
    expect(config.metricNamespaces).toEqual([]);
    expect(config.memoryLimitMb).toBeNull();
    expect(config.socketIoCorsOrigins).toEqual([]);
    expect(config.nodeId).toBe(`${os.hostname()}-${process.pid}`);
  });
});
