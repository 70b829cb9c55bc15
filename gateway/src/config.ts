/**
 * The node's configuration: parsed once from the environment at start-up.
 * Nothing else in the gateway reads process.env. Every variable is listed in
 * CONFIG_VARIABLES with its default and meaning; README's table mirrors it
 * (gateway/test/config.test.ts keeps the two in step).
 */

import { createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Algorithm } from "jsonwebtoken";
import { DEFAULT_MAX_JSON_DEPTH } from "../../shared/src/json-limits.js";
import { DEFAULT_CHANNEL_HISTORY, HistoryPolicy, HistoryPolicyError } from "./history/history-policy.js";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
export type GatewayEnv = "development" | "production";

export interface JwtConfig {
  /** HS256 shared secret or an asymmetric public key; never both. */
  readonly key: string | KeyObject;
  readonly algorithms: readonly Algorithm[];
  readonly issuer: string | undefined;
  readonly audience: readonly string[] | undefined;
  readonly clockToleranceSeconds: number;
}

export interface PostgresConfig {
  readonly url: string;
  /** Every table lives in this schema; tests use one schema each. */
  readonly schema: string;
  readonly poolMax: number;
  readonly poolMin: number;
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
}

export interface ClockConfig {
  readonly waitMs: number;
  readonly raceMs: number;
  readonly finishMs: number;
  readonly timerUpdateIntervalMs: number;
  readonly raceSyncIntervalMs: number;
  readonly leaseTtlMs: number;
  readonly runners: number;
}

export interface GatewayConfig {
  readonly nodeId: string;
  readonly env: GatewayEnv;
  readonly host: string;
  readonly port: number;
  readonly logLevel: LogLevel;
  readonly redisUrl: string;
  readonly redisPrefix: string;
  readonly jwt: JwtConfig;
  readonly publishKey: string;
  readonly publishMaxBodyBytes: number;
  readonly publishMaxBatch: number;
  /** Deepest JSON nesting accepted from backends and clients. */
  readonly maxJsonDepth: number;
  readonly maxFrameBytes: number;
  readonly maxSubscriptions: number;
  readonly idleTimeoutSeconds: number;
  readonly maxBackpressureBytes: number;
  readonly channelStateTtlSeconds: number;
  readonly history: HistoryPolicy;
  readonly idempotencyWindowMs: number;
  readonly unsubscribeDelayMs: number;
  readonly drainWindowMs: number;
  /** Null: take the cgroup limit or physical memory. */
  readonly memoryLimitMb: number | null;
  /** Null when DATABASE_URL is unset: then the node runs no round clock. */
  readonly postgres: PostgresConfig | null;
  /** Null when CLOCK_ENABLED=false. */
  readonly clock: ClockConfig | null;
  readonly ingest: IngestConfig | null;
  readonly writer: WriterConfig;
  /** Origins allowed to open Socket.IO sessions from other sites; empty = same origin only. */
  readonly socketIoCorsOrigins: readonly string[];
}

export interface WriterConfig {
  readonly maxBatch: number;
  readonly concurrency: number;
  readonly flushMs: number;
  readonly queueMax: number;
  readonly minBetAmount: number;
  readonly maxBetAmount: number;
}

export interface IngestConfig {
  readonly batch: number;
  readonly claimIdleMs: number;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = "ConfigError";
  }
}

export interface ConfigVariable {
  readonly name: string;
  readonly default: string | undefined;
  readonly description: string;
}

/** Every variable the node reads. Order is the README's order. */
export const CONFIG_VARIABLES: readonly ConfigVariable[] = [
  { name: "NODE_ID", default: "<hostname>-<pid>", description: "Name of this node in logs, metrics (`node` label) and the welcome frame." },
  { name: "GATEWAY_ENV", default: "production", description: "`development` or `production`." },
  { name: "HOST", default: "0.0.0.0", description: "Address to listen on." },
  { name: "PORT", default: "9001", description: "Port for WebSocket, publish API, health and metrics." },
  { name: "LOG_LEVEL", default: "info", description: "pino level: fatal, error, warn, info, debug, trace, silent." },
  { name: "REDIS_URL", default: "redis://127.0.0.1:6379", description: "Redis for pub/sub fan-out and channel offsets." },
  { name: "REDIS_PREFIX", default: "gw", description: "Prefix of every Redis key and pub/sub channel; separate clusters or tests on one Redis." },
  { name: "JWT_SECRET", default: undefined, description: "HS256 secret. Exactly one of JWT_SECRET and JWT_PUBLIC_KEY_FILE is required." },
  { name: "JWT_PUBLIC_KEY_FILE", default: undefined, description: "PEM public key (RSA → RS256, EC P-256 → ES256)." },
  { name: "JWT_ALGORITHMS", default: "HS256, or RS256 / ES256 from the key", description: "Comma list of accepted algorithms; must match the key kind; `none` is never accepted." },
  { name: "JWT_ISSUER", default: undefined, description: "Required `iss` when set." },
  { name: "JWT_AUDIENCE", default: undefined, description: "Comma list; the token's `aud` must contain one when set." },
  { name: "JWT_CLOCK_TOLERANCE_S", default: "5", description: "Seconds of clock skew allowed for `exp` and `nbf`." },
  { name: "PUBLISH_KEY", default: undefined, description: "Required. Bearer key for POST /v1/publish (at least 16 characters)." },
  { name: "PUBLISH_MAX_BODY_BYTES", default: "1048576", description: "Largest publish body; larger gets 413." },
  { name: "PUBLISH_MAX_BATCH", default: "1000", description: "Most messages in one batch publish." },
  { name: "MAX_JSON_DEPTH", default: "32", description: "Deepest nesting of publish and ingest `data` and of client frames; deeper gets 400 or `bad_request`." },
  { name: "MAX_FRAME_BYTES", default: "16384", description: "Largest client frame; larger closes the socket with 1009." },
  { name: "MAX_SUBSCRIPTIONS", default: "100", description: "Most channels one socket may hold, its own `user:<sub>` included." },
  { name: "IDLE_TIMEOUT_S", default: "60", description: "Close sockets silent this long; the server pings before (0 disables, else ≥ 8)." },
  { name: "MAX_BACKPRESSURE_BYTES", default: "1048576", description: "Per-socket send buffer; a socket past it is closed as a slow consumer." },
  { name: "CHANNEL_STATE_TTL_S", default: "86400", description: "A channel's offset/epoch expire after this long without publishes (a new epoch follows)." },
  { name: "CHANNEL_HISTORY", default: "race=20/30,forecasts=100/300,user=200/900,*=100/300", description: "Per channel namespace, `size/ttl_seconds` of history kept for resume and gap repair; `*` covers every other namespace. A history disappears ttl seconds after the channel's last publish." },
  { name: "IDEMPOTENCY_WINDOW_S", default: "300", description: "How long a publish's `idempotencyKey` is remembered per channel; a repeat within it publishes nothing." },
  { name: "UNSUBSCRIBE_DELAY_MS", default: "1000", description: "Keep a Redis subscription this long after the last local subscriber leaves." },
  { name: "DRAIN_WINDOW_MS", default: "10000", description: "On SIGTERM, close sockets with 1012 spread over this window." },
  { name: "MEMORY_LIMIT_MB", default: "cgroup limit, else physical memory", description: "Memory budget that `gateway_memory_limit_bytes` reports for the memory alert." },
  { name: "DATABASE_URL", default: undefined, description: "Postgres for round records (postgres://user:pass@host:port/db). Required while the round clock is enabled." },
  { name: "PG_SCHEMA", default: "public", description: "Schema holding the gateway's tables; created by the migrations." },
  { name: "PG_POOL_MAX", default: "10", description: "Most pooled Postgres connections per node." },
  { name: "PG_POOL_MIN", default: "0", description: "Pooled connections kept open when idle." },
  { name: "PG_IDLE_TIMEOUT_MS", default: "30000", description: "Close pooled connections idle this long (above PG_POOL_MIN)." },
  { name: "PG_CONNECT_TIMEOUT_MS", default: "5000", description: "Give up connecting to Postgres after this long." },
  { name: "PG_STATEMENT_TIMEOUT_MS", default: "10000", description: "Server-side statement_timeout for every pooled connection." },
  { name: "CLOCK_ENABLED", default: "true", description: "Take part in the cluster's round clock (lease election). Needs DATABASE_URL." },
  { name: "ROUND_WAIT_MS", default: "60000", description: "Waiting phase (`game_screen`, bets open) of each round." },
  { name: "ROUND_RACE_MS", default: "20000", description: "Race phase (`movie_screen`)." },
  { name: "ROUND_FINISH_MS", default: "5000", description: "Results phase (`finish_screen`) before the next round." },
  { name: "TIMER_UPDATE_INTERVAL_MS", default: "500", description: "Cadence of `timer_update` while a round waits." },
  { name: "RACE_SYNC_INTERVAL_MS", default: "2000", description: "Cadence of `race_sync` while the race and results show." },
  { name: "CLOCK_LEASE_TTL_MS", default: "3000", description: "Round authority lease; another node takes over within about this long after the holder dies." },
  { name: "RACE_RUNNERS", default: "8", description: "Runners per race; the result is a ranking of 1..N." },
  { name: "SOCKETIO_CORS_ORIGINS", default: "(none: same origin only)", description: "Comma list of origins allowed to open Socket.IO sessions cross-site (e.g. `https://app.example.com`)." },
  { name: "WRITER_BATCH_MAX", default: "500", description: "Most bets written in one transaction." },
  { name: "WRITER_CONCURRENCY", default: "2", description: "Batches written at once, each in its own transaction (at most PG_POOL_MAX)." },
  { name: "WRITER_FLUSH_MS", default: "20", description: "Write a partial batch this long after its first command arrived." },
  { name: "WRITER_QUEUE_MAX", default: "10000", description: "Commands waiting for the database; past it, new ones get `overloaded`." },
  { name: "BET_MIN_AMOUNT", default: "1", description: "Smallest bet, in minor currency units." },
  { name: "BET_MAX_AMOUNT", default: "1000000", description: "Largest bet, in minor currency units." },
  { name: "INGEST_ENABLED", default: "true", description: "Consume the `<REDIS_PREFIX>:ingest` stream (feeds from backends over Redis)." },
  { name: "INGEST_BATCH", default: "100", description: "Most stream entries read and published at once." },
  { name: "INGEST_CLAIM_IDLE_MS", default: "30000", description: "Take over stream entries left pending this long by a dead node." },
];

type Env = Readonly<Record<string, string | undefined>>;

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `expected an integer, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const match = allowed.find((candidate) => candidate === raw);
  if (match === undefined) throw new ConfigError(name, `expected one of ${allowed.join(", ")}, got "${raw}"`);
  return match;
}

function list(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const items = raw.split(",").map((item) => item.trim()).filter((item) => item.length > 0);
  return items.length > 0 ? items : undefined;
}

const HMAC_ALGORITHMS: readonly Algorithm[] = ["HS256", "HS384", "HS512"];
const RSA_ALGORITHMS: readonly Algorithm[] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
const EC_ALGORITHMS_BY_CURVE: Readonly<Record<string, Algorithm>> = {
  prime256v1: "ES256",
  secp384r1: "ES384",
  secp521r1: "ES512",
};

function jwtConfig(env: Env): JwtConfig {
  const secret = read(env, "JWT_SECRET");
  const keyFile = read(env, "JWT_PUBLIC_KEY_FILE");
  const requested = list(read(env, "JWT_ALGORITHMS"));
  if (requested?.some((alg) => alg.toLowerCase() === "none")) {
    throw new ConfigError("JWT_ALGORITHMS", "`none` is never accepted");
  }
  if (secret !== undefined && keyFile !== undefined) {
    throw new ConfigError("JWT_SECRET", "set JWT_SECRET or JWT_PUBLIC_KEY_FILE, not both (mixing HMAC and public keys invites algorithm confusion)");
  }
  if (secret === undefined && keyFile === undefined) {
    throw new ConfigError("JWT_SECRET", "required (or JWT_PUBLIC_KEY_FILE)");
  }

  let key: string | KeyObject;
  let allowed: readonly Algorithm[];
  let defaults: readonly Algorithm[];
  if (secret !== undefined) {
    if (secret.length < 16) throw new ConfigError("JWT_SECRET", "must be at least 16 characters");
    key = secret;
    allowed = HMAC_ALGORITHMS;
    defaults = ["HS256"];
  } else {
    const path = keyFile as string;
    let pem: string;
    try {
      pem = readFileSync(path, "utf8");
    } catch (err) {
      throw new ConfigError("JWT_PUBLIC_KEY_FILE", `cannot read ${path}: ${(err as Error).message}`);
    }
    try {
      key = createPublicKey(pem);
    } catch (err) {
      throw new ConfigError("JWT_PUBLIC_KEY_FILE", `${path} is not a PEM public key: ${(err as Error).message}`);
    }
    if (key.asymmetricKeyType === "rsa") {
      allowed = RSA_ALGORITHMS;
      defaults = ["RS256"];
    } else if (key.asymmetricKeyType === "ec") {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? "";
      const alg = EC_ALGORITHMS_BY_CURVE[curve];
      if (alg === undefined) throw new ConfigError("JWT_PUBLIC_KEY_FILE", `unsupported EC curve "${curve}"`);
      allowed = [alg];
      defaults = [alg];
    } else {
      throw new ConfigError("JWT_PUBLIC_KEY_FILE", `unsupported key type "${key.asymmetricKeyType ?? "unknown"}" (use RSA or EC)`);
    }
  }

  const algorithms = requested ?? defaults;
  for (const alg of algorithms) {
    if (!allowed.includes(alg as Algorithm)) {
      throw new ConfigError("JWT_ALGORITHMS", `"${alg}" does not fit the configured key (allowed: ${allowed.join(", ")})`);
    }
  }

  return {
    key,
    algorithms: algorithms as Algorithm[],
    issuer: read(env, "JWT_ISSUER"),
    audience: list(read(env, "JWT_AUDIENCE")),
    clockToleranceSeconds: integer(env, "JWT_CLOCK_TOLERANCE_S", 5, 0, 300),
  };
}

function redisUrl(env: Env): string {
  const raw = read(env, "REDIS_URL") ?? "redis://127.0.0.1:6379";
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError("REDIS_URL", `not a URL: "${raw}"`);
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new ConfigError("REDIS_URL", `expected redis:// or rediss://, got "${url.protocol}"`);
  }
  return raw;
}

function idleTimeout(env: Env): number {
  const value = integer(env, "IDLE_TIMEOUT_S", 60, 0, 960);
  // uWebSockets.js rejects 1..7: its timer granularity is 4 s.
  if (value > 0 && value < 8) throw new ConfigError("IDLE_TIMEOUT_S", "must be 0 (disabled) or at least 8");
  return value;
}

function historyPolicy(env: Env, channelStateTtlSeconds: number): HistoryPolicy {
  let policy: HistoryPolicy;
  try {
    policy = HistoryPolicy.parse(read(env, "CHANNEL_HISTORY") ?? DEFAULT_CHANNEL_HISTORY);
  } catch (err) {
    if (err instanceof HistoryPolicyError) throw new ConfigError("CHANNEL_HISTORY", err.message);
    throw err;
  }
  // History whose channel state expired first would be numbered by a new epoch.
  if (channelStateTtlSeconds > 0 && policy.longestTtlSeconds() > channelStateTtlSeconds) {
    throw new ConfigError("CHANNEL_HISTORY", `a ttl (${policy.longestTtlSeconds()} s) is longer than CHANNEL_STATE_TTL_S (${channelStateTtlSeconds} s)`);
  }
  return policy;
}

function flag(env: Env, name: string, fallback: boolean): boolean {
  return oneOf(env, name, ["true", "false"], fallback ? "true" : "false") === "true";
}

function postgresConfig(env: Env): PostgresConfig | null {
  const url = read(env, "DATABASE_URL");
  if (url === undefined) return null;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError("DATABASE_URL", "not a URL");
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new ConfigError("DATABASE_URL", `expected postgres:// or postgresql://, got "${parsed.protocol}"`);
  }
  const schema = read(env, "PG_SCHEMA") ?? "public";
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new ConfigError("PG_SCHEMA", "lower-case identifier of at most 63 characters");
  const poolMax = integer(env, "PG_POOL_MAX", 10, 1, 1000);
  return {
    url,
    schema,
    poolMax,
    poolMin: integer(env, "PG_POOL_MIN", 0, 0, poolMax),
    idleTimeoutMs: integer(env, "PG_IDLE_TIMEOUT_MS", 30_000, 0, 3_600_000),
    connectTimeoutMs: integer(env, "PG_CONNECT_TIMEOUT_MS", 5000, 100, 120_000),
    statementTimeoutMs: integer(env, "PG_STATEMENT_TIMEOUT_MS", 10_000, 100, 3_600_000),
  };
}

function clockConfig(env: Env, postgres: PostgresConfig | null): ClockConfig | null {
  if (!flag(env, "CLOCK_ENABLED", true)) return null;
  if (postgres === null) throw new ConfigError("DATABASE_URL", "required while CLOCK_ENABLED=true (rounds are recorded in Postgres)");
  const leaseTtlMs = integer(env, "CLOCK_LEASE_TTL_MS", 3000, 500, 60_000);
  return {
    waitMs: integer(env, "ROUND_WAIT_MS", 60_000, 100, 86_400_000),
    raceMs: integer(env, "ROUND_RACE_MS", 20_000, 100, 86_400_000),
    finishMs: integer(env, "ROUND_FINISH_MS", 5000, 100, 86_400_000),
    timerUpdateIntervalMs: integer(env, "TIMER_UPDATE_INTERVAL_MS", 500, 20, 60_000),
    raceSyncIntervalMs: integer(env, "RACE_SYNC_INTERVAL_MS", 2000, 20, 60_000),
    leaseTtlMs,
    runners: integer(env, "RACE_RUNNERS", 8, 2, 64),
  };
}

function ingestConfig(env: Env): IngestConfig | null {
  if (!flag(env, "INGEST_ENABLED", true)) return null;
  return {
    batch: integer(env, "INGEST_BATCH", 100, 1, 10_000),
    claimIdleMs: integer(env, "INGEST_CLAIM_IDLE_MS", 30_000, 1000, 3_600_000),
  };
}

function writerConfig(env: Env): WriterConfig {
  const minBetAmount = integer(env, "BET_MIN_AMOUNT", 1, 1, Number.MAX_SAFE_INTEGER);
  return {
    maxBatch: integer(env, "WRITER_BATCH_MAX", 500, 1, 10_000),
    concurrency: integer(env, "WRITER_CONCURRENCY", 2, 1, 64),
    flushMs: integer(env, "WRITER_FLUSH_MS", 20, 1, 10_000),
    queueMax: integer(env, "WRITER_QUEUE_MAX", 10_000, 1, 10_000_000),
    minBetAmount,
    maxBetAmount: integer(env, "BET_MAX_AMOUNT", 1_000_000, minBetAmount, Number.MAX_SAFE_INTEGER),
  };
}

function corsOrigins(env: Env): string[] {
  const origins = list(read(env, "SOCKETIO_CORS_ORIGINS")) ?? [];
  for (const origin of origins) {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new ConfigError("SOCKETIO_CORS_ORIGINS", `"${origin}" is not an origin like https://app.example.com`);
    }
    if (url.origin !== origin) throw new ConfigError("SOCKETIO_CORS_ORIGINS", `"${origin}" must be a bare origin (scheme://host[:port]), got more`);
  }
  return origins;
}

/** Parses and validates; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env): GatewayConfig {
  const publishKey = read(env, "PUBLISH_KEY");
  if (publishKey === undefined) throw new ConfigError("PUBLISH_KEY", "required");
  if (publishKey.length < 16) throw new ConfigError("PUBLISH_KEY", "must be at least 16 characters");

  const redisPrefix = read(env, "REDIS_PREFIX") ?? "gw";
  if (!/^[A-Za-z0-9_\-.:]{1,64}$/.test(redisPrefix)) {
    throw new ConfigError("REDIS_PREFIX", "1-64 characters of A-Z a-z 0-9 _ - . :");
  }
  const nodeId = read(env, "NODE_ID") ?? `${hostname()}-${process.pid}`;
  if (!/^[A-Za-z0-9_\-.]{1,64}$/.test(nodeId)) {
    throw new ConfigError("NODE_ID", "1-64 characters of A-Z a-z 0-9 _ - .");
  }

  const postgres = postgresConfig(env);
  const channelStateTtlSeconds = integer(env, "CHANNEL_STATE_TTL_S", 86_400, 0, 365 * 86_400);
  return {
    nodeId,
    env: oneOf(env, "GATEWAY_ENV", ["development", "production"], "production"),
    host: read(env, "HOST") ?? "0.0.0.0",
    port: integer(env, "PORT", 9001, 0, 65535),
    logLevel: oneOf(env, "LOG_LEVEL", ["fatal", "error", "warn", "info", "debug", "trace", "silent"], "info"),
    redisUrl: redisUrl(env),
    redisPrefix,
    jwt: jwtConfig(env),
    publishKey,
    publishMaxBodyBytes: integer(env, "PUBLISH_MAX_BODY_BYTES", 1024 * 1024, 256, 64 * 1024 * 1024),
    publishMaxBatch: integer(env, "PUBLISH_MAX_BATCH", 1000, 1, 100_000),
    maxJsonDepth: integer(env, "MAX_JSON_DEPTH", DEFAULT_MAX_JSON_DEPTH, 1, 256),
    maxFrameBytes: integer(env, "MAX_FRAME_BYTES", 16 * 1024, 256, 16 * 1024 * 1024),
    maxSubscriptions: integer(env, "MAX_SUBSCRIPTIONS", 100, 1, 10_000),
    idleTimeoutSeconds: idleTimeout(env),
    maxBackpressureBytes: integer(env, "MAX_BACKPRESSURE_BYTES", 1024 * 1024, 1024, 1024 * 1024 * 1024),
    channelStateTtlSeconds,
    history: historyPolicy(env, channelStateTtlSeconds),
    idempotencyWindowMs: integer(env, "IDEMPOTENCY_WINDOW_S", 300, 1, 86_400) * 1000,
    unsubscribeDelayMs: integer(env, "UNSUBSCRIBE_DELAY_MS", 1000, 0, 600_000),
    drainWindowMs: integer(env, "DRAIN_WINDOW_MS", 10_000, 0, 600_000),
    memoryLimitMb: read(env, "MEMORY_LIMIT_MB") === undefined ? null : integer(env, "MEMORY_LIMIT_MB", 0, 16, 16 * 1024 * 1024),
    postgres,
    clock: clockConfig(env, postgres),
    ingest: ingestConfig(env),
    writer: writerConfig(env),
    socketIoCorsOrigins: corsOrigins(env),
  };
}
