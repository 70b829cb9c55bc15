import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CONFIG_VARIABLES, ConfigError, DEVELOPMENT_ROUND_SEED_KEY, loadConfig } from "../../src/config.js";
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
  ];
  for (const [variable, env] of bad) {
    it(`names ${variable} when it is wrong (${JSON.stringify(env).slice(0, 60)})`, () => {
      expect(failure(env).variable).toBe(variable);
    });
  }

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
    expect(config.redisUrl).toBe(literal("REDIS_URL"));
    expect(String(config.postgres?.poolMax)).toBe(literal("PG_POOL_MAX"));
    expect(String(config.clock?.leaseTtlMs)).toBe(literal("CLOCK_LEASE_TTL_MS"));
    expect(String(config.clock?.oddsMarginBp)).toBe(literal("ODDS_MARGIN_BP"));
    expect(String(config.writer.maxBetAmount)).toBe(literal("BET_MAX_AMOUNT"));
    expect(String(config.ingest?.claimIdleMs)).toBe(literal("INGEST_CLAIM_IDLE_MS"));
    expect(config.memoryLimitMb).toBeNull();
    expect(config.socketIoCorsOrigins).toEqual([]);
    expect(config.nodeId).toBe(`${os.hostname()}-${process.pid}`);
  });
});
