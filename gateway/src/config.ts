/**
 * The node's configuration: parsed once from the environment at start-up.
 * Nothing else in the gateway reads process.env. Each variable is declared
 * once below, with its default, its meaning and its parser; CONFIG_VARIABLES
 * lists them in the README's order, and gateway/test/unit/config.test.ts
 * fails when README's table says anything else.
 */

import { createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { DEFAULT_MAX_JSON_DEPTH } from "../../shared/src/json-limits.js";
import type { JwsAlgorithm } from "./auth/jws.js";
import { DEFAULT_PERSONAL_CHANNEL_SHARDS } from "./broker/redis-keys.js";
import { DEV_JWT_SECRET, DEV_PUBLISH_KEY } from "./dev-credentials.js";
import type { RedisAddress, RedisTopology } from "./redis/topology.js";
import { DEFAULT_CHANNEL_HISTORY, HistoryPolicy, HistoryPolicyError } from "./history/history-policy.js";
import { WS_COMPRESSION_MODES, type WsCompression, type WsCompressionConfig } from "./transport/ws-compression.js";
import { CidrError, DEFAULT_TRUSTED_PROXIES, TrustedProxies } from "./limits/client-address.js";
import {
  ChoiceVariable,
  ConfigError,
  FlagVariable,
  IntegerVariable,
  ListVariable,
  OptionalIntegerVariable,
  OptionalTextVariable,
  TextVariable,
  optionalList,
  type ConfigVariable,
  type Env,
} from "./config-variables.js";

export { ConfigError, type ConfigVariable };

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
export type GatewayEnv = "development" | "production";

export interface JwtConfig {
  /** HMAC shared secret (JWT_SECRET) or an asymmetric public key (JWT_PUBLIC_KEY_FILE); never both. */
  readonly key: string | KeyObject;
  readonly algorithms: readonly JwsAlgorithm[];
  readonly issuer: string | undefined;
  readonly audience: readonly string[] | undefined;
  readonly clockToleranceSeconds: number;
  /** Longest token lifetime accepted, `exp` required (production); null: neither is checked (development). */
  readonly maxLifetimeSeconds: number | null;
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
  /** The house margin in basis points: every runner's decimal odds are runners × (1 − margin), rounded down to 0.01. */
  readonly oddsMarginBp: number;
  /**
   * The secret that seals each race's seed in Redis between race_started and
   * round_finished (ROUND_SEED_KEY, or the fixed development key in development).
   */
  readonly seedSecret: string;
}

export interface GatewayConfig {
  readonly nodeId: string;
  readonly env: GatewayEnv;
  readonly host: string;
  readonly port: number;
  readonly logLevel: LogLevel;
  /** Where Redis is: one server, a Sentinel-watched master, or a Cluster. */
  readonly redis: RedisTopology;
  /** Replicas that must hold a publish (Redis WAIT) before it is acknowledged; 0: once the master ran it. */
  readonly redisWaitReplicas: number;
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
  /** permessage-deflate on `/ws` for clients that offer it. */
  readonly wsCompression: WsCompressionConfig;
  readonly channelStateTtlSeconds: number;
  readonly history: HistoryPolicy;
  readonly personalChannelShards: number;
  readonly limits: LimitsConfig;
  /** Channel namespaces metrics label by, besides the built-in ones and CHANNEL_HISTORY's; any other is `other`. */
  readonly metricNamespaces: readonly string[];
  readonly presence: PresenceConfig;
  /**
   * How long a revocation holds after its `before`: the longest a token
   * issued before it can be accepted (JWT_MAX_LIFETIME_S, enforced or not,
   * plus the clock tolerance either side).
   */
  readonly revocationTtlSeconds: number;
  readonly idempotencyWindowMs: number;
  readonly unsubscribeDelayMs: number;
  readonly drainWindowMs: number;
  /** Null: take the cgroup limit or physical memory. */
  readonly memoryLimitMb: number | null;
  /** Null when DATABASE_URL is unset: then the node takes no bets and runs no round clock. */
  readonly postgres: PostgresConfig | null;
  /** Null when CLOCK_ENABLED=false (true requires DATABASE_URL). */
  readonly clock: ClockConfig | null;
  /** Null when INGEST_ENABLED=false. */
  readonly ingest: IngestConfig | null;
  readonly writer: WriterConfig;
  /** Origins allowed to open Socket.IO sessions from other sites; empty = same origin only. */
  readonly socketIoCorsOrigins: readonly string[];
}

export interface PresenceConfig {
  readonly namespaces: readonly string[];
  /** A subset of `namespaces`. */
  readonly joinLeaveNamespaces: readonly string[];
  readonly maxMembers: number;
}

/** Rate limits (see docs/operations.md, "Rate limits"); 0 turns the per-user connection and per-address limits off. */
export interface LimitsConfig {
  readonly framesPerSecond: number;
  readonly frameBurst: number;
  readonly subscribesPerSecond: number;
  readonly subscribeBurst: number;
  readonly maxConnectionsPerUser: number;
  readonly maxCommandsInFlightPerUser: number;
  readonly connectsPerAddressPerSecond: number;
  readonly connectBurstPerAddress: number;
  readonly trustedProxies: TrustedProxies;
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
  readonly maxAttempts: number;
}

const MAX = Number.MAX_SAFE_INTEGER;
const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379";
const LOG_LEVELS: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** The node's environment variables, each with its default, meaning and parser, in the README's order. */
const VARIABLES = {
  nodeId: new TextVariable("NODE_ID", { documented: "`<hostname>-<pid>`", compute: () => `${hostname()}-${process.pid}` }, "Name of this node in logs, metrics (`node` label) and the welcome frame."),
  env: new ChoiceVariable<GatewayEnv>("GATEWAY_ENV", ["development", "production"], "production", "`development` or `production`."),
  host: new TextVariable("HOST", "0.0.0.0", "Address to listen on."),
  port: new IntegerVariable("PORT", 9001, { min: 0, max: 65535 }, "Port for WebSocket, publish API, health and metrics. The node holds it alone (no SO_REUSEPORT): a port in use stops the start with exit 1, `cannot listen on …`."),
  logLevel: new ChoiceVariable<LogLevel>("LOG_LEVEL", LOG_LEVELS, "info", "pino level: fatal, error, warn, info, debug, trace, silent."),
  redisUrl: new TextVariable("REDIS_URL", DEFAULT_REDIS_URL, "Redis for pub/sub fan-out and channel offsets, when neither `REDIS_SENTINELS` nor `REDIS_CLUSTER_NODES` is set."),
  redisSentinels: optionalList(
    "REDIS_SENTINELS",
    "Comma list of Sentinel `host:port`s. When set, every Redis connection of the node asks them for the current master of `REDIS_SENTINEL_MASTER` and follows it through failovers. Not with a custom `REDIS_URL` or with `REDIS_CLUSTER_NODES`.",
  ),
  redisSentinelMaster: new OptionalTextVariable("REDIS_SENTINEL_MASTER", "The master name the Sentinels monitor. Required with `REDIS_SENTINELS`."),
  redisSentinelPassword: new OptionalTextVariable("REDIS_SENTINEL_PASSWORD", "Password of the Sentinels themselves (`requirepass` in sentinel.conf), when they have one."),
  redisClusterNodes: optionalList(
    "REDIS_CLUSTER_NODES",
    "Comma list of `host:port`s of some Redis Cluster nodes. When set, the node runs on the Cluster: each channel's keys and pub/sub channel share a hash slot, broadcasts use sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis 7), and a batch publish is atomic per slot only (docs/protocol.md). Not with a custom `REDIS_URL` or with `REDIS_SENTINELS`.",
  ),
  redisPassword: new OptionalTextVariable("REDIS_PASSWORD", "Password of the Redis servers under `REDIS_SENTINELS` or `REDIS_CLUSTER_NODES` (with a single Redis, put it in `REDIS_URL`)."),
  redisWaitReplicas: new IntegerVariable(
    "REDIS_WAIT_REPLICAS",
    0,
    { min: 0, max: 16 },
    "Replicas that must hold a publish (Redis `WAIT`) before it is acknowledged, so a failover cannot lose an acknowledged publish; one that is not replicated within a second is answered 503. With 1, keep two replicas per master, or publishes stop when one replica is left.",
  ),
  redisPrefix: new TextVariable("REDIS_PREFIX", "gw", "Prefix of every Redis key and pub/sub channel, so separate clusters or tests can share one Redis."),
  jwtSecret: new OptionalTextVariable("JWT_SECRET", "HS256 secret of at least 16 characters. Exactly one of `JWT_SECRET` and `JWT_PUBLIC_KEY_FILE` is required."),
  jwtPublicKeyFile: new OptionalTextVariable("JWT_PUBLIC_KEY_FILE", "PEM public key: RSA gives RS256, EC P-256 gives ES256 (P-384 gives ES384)."),
  jwtAlgorithms: new ListVariable("JWT_ALGORITHMS", "from the key", "Comma list of accepted algorithms. It must fit the key kind, and `none` is always refused."),
  jwtIssuer: new OptionalTextVariable("JWT_ISSUER", "When set, `iss` must equal it."),
  jwtAudience: optionalList("JWT_AUDIENCE", "When set (a comma list), `aud` must contain one of the values."),
  jwtClockTolerance: new IntegerVariable("JWT_CLOCK_TOLERANCE_S", 5, { min: 0, max: 300 }, "Seconds of clock skew allowed for `exp` and `nbf`, including the expiry close."),
  jwtMaxLifetime: new IntegerVariable(
    "JWT_MAX_LIFETIME_S",
    86_400,
    { min: 60, max: 366 * 86_400 },
    "In production, tokens without `exp` are refused, and so are tokens living longer than this (`exp` − `iat`, or `exp` − now without `iat`). Development checks neither.",
  ),
  publishKey: new OptionalTextVariable("PUBLISH_KEY", "Required. Bearer key for `POST /v1/publish`, at least 16 characters."),
  publishMaxBodyBytes: new IntegerVariable("PUBLISH_MAX_BODY_BYTES", 1024 * 1024, { min: 256, max: 64 * 1024 * 1024 }, "Largest publish body; anything larger gets 413."),
  publishMaxBatch: new IntegerVariable("PUBLISH_MAX_BATCH", 1000, { min: 1, max: 100_000 }, "Most messages in one batch publish."),
  maxJsonDepth: new IntegerVariable("MAX_JSON_DEPTH", DEFAULT_MAX_JSON_DEPTH, { min: 1, max: 256 }, "Deepest nesting of publish and ingest `data` and of client frames; deeper gets 400 or `bad_request`."),
  maxFrameBytes: new IntegerVariable("MAX_FRAME_BYTES", 16 * 1024, { min: 256, max: 16 * 1024 * 1024 }, "Largest client frame; a larger one closes the socket with 1009."),
  maxSubscriptions: new IntegerVariable("MAX_SUBSCRIPTIONS", 100, { min: 1, max: 10_000 }, "Most channels one socket may hold, its own `user:<sub>` included."),
  idleTimeout: new IntegerVariable("IDLE_TIMEOUT_S", 60, { min: 0, max: 960 }, "Close sockets silent this long; the server pings first. 0 disables it; otherwise it must be at least 8."),
  maxBackpressureBytes: new IntegerVariable("MAX_BACKPRESSURE_BYTES", 1024 * 1024, { min: 1024, max: 1024 * 1024 * 1024 }, "Per-socket send buffer. A socket past it is closed as a slow consumer."),
  wsCompression: new ChoiceVariable<WsCompression>(
    "WS_COMPRESSION",
    WS_COMPRESSION_MODES,
    "off",
    "permessage-deflate on `/ws` for clients that offer it: `off`, `shared` (one compressor per node; each frame compressed from scratch) or `dedicated-4kb` (a compressor per compressing socket that remembers its last 512 bytes, so small frames like the last one shrink most). uWS compresses once per recipient, not once per publish: see docs/performance.md for what it costs.",
  ),
  wsCompressionMinBytes: new IntegerVariable("WS_COMPRESSION_MIN_BYTES", 1024, { min: 0, max: 16 * 1024 * 1024 }, "With `WS_COMPRESSION` on, frames shorter than this are sent uncompressed even to clients that negotiated compression."),
  clientFramesPerSecond: new IntegerVariable(
    "CLIENT_FRAMES_PER_S",
    50,
    { min: 1, max: 100_000 },
    "Frames (`/ws`) or events (Socket.IO) one connection may send per second, on average; more are answered `rate_limited`.",
  ),
  clientFrameBurst: new IntegerVariable(
    "CLIENT_FRAME_BURST",
    100,
    { min: 1, max: 1_000_000 },
    "Frames one connection may send at once before `CLIENT_FRAMES_PER_S` applies. A connection that keeps sending while refused, for another burst of frames, is closed with 4029.",
  ),
  subscribesPerSecond: new IntegerVariable("SUBSCRIBES_PER_S", 10, { min: 1, max: 100_000 }, "Subscribe and unsubscribe requests one connection may send per second, on average; more are answered `subscribe_rate_limited`."),
  subscribeBurst: new IntegerVariable("SUBSCRIBE_BURST", 100, { min: 1, max: 1_000_000 }, "Subscribe and unsubscribe requests one connection may send at once (a reconnect resubscribing everything) before `SUBSCRIBES_PER_S` applies."),
  maxConnectionsPerUser: new IntegerVariable(
    "MAX_CONNECTIONS_PER_USER",
    20,
    { min: 0, max: 1_000_000 },
    "Connections one user (`sub`) may hold at once across the cluster, both transports together, counted in Redis; more are refused with 429 `too_many_connections`. 0 turns the limit off.",
  ),
  maxCommandsInFlightPerUser: new IntegerVariable(
    "MAX_COMMANDS_IN_FLIGHT_PER_USER",
    64,
    { min: 1, max: 1_000_000 },
    "Commands one user may have waiting for their replies on a node; more are answered `too_many_commands`, so one user cannot fill `WRITER_QUEUE_MAX`.",
  ),
  connectsPerAddressPerSecond: new IntegerVariable(
    "CONNECTS_PER_ADDRESS_PER_S",
    50,
    { min: 0, max: 1_000_000 },
    "New connections one client address (an IPv6 /64) may open per second on a node, on average; more are refused with 429 `connect_rate_limited`. 0 turns the limit off.",
  ),
  connectBurstPerAddress: new IntegerVariable("CONNECT_BURST_PER_ADDRESS", 500, { min: 1, max: 1_000_000 }, "New connections one client address may open at once before `CONNECTS_PER_ADDRESS_PER_S` applies."),
  trustedProxies: new ListVariable(
    "TRUSTED_PROXIES",
    `\`${DEFAULT_TRUSTED_PROXIES.join(",")}\``,
    "Comma list of addresses and CIDR ranges of proxies (NGINX, ingress) whose `X-Forwarded-For` names the client for per-address limits; `none` trusts no header. Set it to your proxies' addresses where clients can reach the nodes directly.",
  ),
  channelStateTtl: new IntegerVariable("CHANNEL_STATE_TTL_S", 86_400, { min: 0, max: 365 * 86_400 }, "A channel's offset and epoch expire after this long without publishes; a new epoch follows."),
  personalChannelShards: new IntegerVariable(
    "PERSONAL_CHANNEL_SHARDS",
    DEFAULT_PERSONAL_CHANNEL_SHARDS,
    { min: 1, max: 16_384 },
    "Shared Redis pub/sub channels that personal channels (`user:<sub>`) are hashed onto; a node holds at most this many Redis subscriptions for them, whatever the number of users. Every node of a cluster must use the same value.",
  ),
  channelHistory: new TextVariable(
    "CHANNEL_HISTORY",
    DEFAULT_CHANNEL_HISTORY,
    "Per channel namespace, `size/ttl_seconds` of history kept for resume and gap repair; `*` covers every other namespace. A history disappears ttl seconds after the channel's last publish.",
  ),
  metricNamespaces: new ListVariable(
    "METRIC_NAMESPACES",
    "none",
    "Comma list of channel namespaces that metrics label by, besides `race`, `forecasts`, `user` and those `CHANNEL_HISTORY` names. Channels of any other namespace are counted as `other`, whatever publishers or grants invent.",
  ),
  presenceNamespaces: new ListVariable(
    "PRESENCE_NAMESPACES",
    "none",
    "Comma list of channel namespaces that keep presence (who is subscribed, across the cluster): `GET /v1/presence` and the `presence` request answer for their channels. `user` cannot be one.",
  ),
  presenceJoinLeave: new ListVariable(
    "PRESENCE_JOIN_LEAVE",
    "none",
    "Comma list of namespaces, each also in `PRESENCE_NAMESPACES`, whose channels get a `presence_join` / `presence_leave` message when a user's first connection subscribes or their last one leaves. They are ordinary messages: they take offsets and history.",
  ),
  presenceMaxMembers: new IntegerVariable("PRESENCE_MAX_MEMBERS", 1000, { min: 1, max: 100_000 }, "Most users one presence answer lists (`truncated: true` past it); the counts always cover everyone."),
  idempotencyWindow: new IntegerVariable("IDEMPOTENCY_WINDOW_S", 300, { min: 1, max: 86_400 }, "How long a publish's `idempotencyKey` is remembered per channel; a repeat within it publishes nothing."),
  unsubscribeDelay: new IntegerVariable("UNSUBSCRIBE_DELAY_MS", 1000, { min: 0, max: 600_000 }, "Keep a Redis subscription this long after the last local subscriber leaves."),
  drainWindow: new IntegerVariable("DRAIN_WINDOW_MS", 10_000, { min: 0, max: 600_000 }, "On SIGTERM, close sockets with 1012 spread over this window."),
  memoryLimit: new OptionalIntegerVariable("MEMORY_LIMIT_MB", "cgroup limit, else physical memory", { min: 16, max: 16 * 1024 * 1024 }, "Memory budget reported as `gateway_memory_limit_bytes`, which the memory alert compares RSS with."),
  databaseUrl: new OptionalTextVariable("DATABASE_URL", "Postgres for round records (`postgres://user:pass@host:port/db`). Required while the round clock is enabled."),
  pgSchema: new TextVariable("PG_SCHEMA", "public", "Schema holding the gateway's tables; the migrations create it."),
  pgPoolMax: new IntegerVariable("PG_POOL_MAX", 10, { min: 1, max: 1000 }, "Most pooled Postgres connections per node."),
  pgPoolMin: new IntegerVariable("PG_POOL_MIN", 0, { min: 0, max: 1000 }, "Pooled connections kept open when idle."),
  pgIdleTimeout: new IntegerVariable("PG_IDLE_TIMEOUT_MS", 30_000, { min: 0, max: 3_600_000 }, "Close pooled connections idle this long (above `PG_POOL_MIN`)."),
  pgConnectTimeout: new IntegerVariable("PG_CONNECT_TIMEOUT_MS", 5000, { min: 100, max: 120_000 }, "Give up connecting to Postgres after this long."),
  pgStatementTimeout: new IntegerVariable("PG_STATEMENT_TIMEOUT_MS", 10_000, { min: 100, max: 3_600_000 }, "Server-side `statement_timeout` for every pooled connection."),
  clockEnabled: new FlagVariable("CLOCK_ENABLED", true, "Compete for the round authority lease and drive rounds when holding it. Needs `DATABASE_URL`."),
  roundWait: new IntegerVariable("ROUND_WAIT_MS", 60_000, { min: 100, max: 86_400_000 }, "Waiting phase (`game_screen`, bets open) of each round."),
  roundRace: new IntegerVariable("ROUND_RACE_MS", 20_000, { min: 100, max: 86_400_000 }, "Race phase (`movie_screen`)."),
  roundFinish: new IntegerVariable("ROUND_FINISH_MS", 5000, { min: 100, max: 86_400_000 }, "Results phase (`finish_screen`) before the next round starts."),
  timerUpdateInterval: new IntegerVariable("TIMER_UPDATE_INTERVAL_MS", 500, { min: 20, max: 60_000 }, "Cadence of `timer_update` while a round waits."),
  raceSyncInterval: new IntegerVariable("RACE_SYNC_INTERVAL_MS", 2000, { min: 20, max: 60_000 }, "Cadence of `race_sync` while the race and the results show."),
  clockLeaseTtl: new IntegerVariable("CLOCK_LEASE_TTL_MS", 3000, { min: 500, max: 60_000 }, "Authority lease. When the holder dies, another node takes over within about this long; the holder renews every third of it."),
  raceRunners: new IntegerVariable("RACE_RUNNERS", 8, { min: 2, max: 64 }, "Runners per race; the result ranks runners 1..N."),
  oddsMargin: new IntegerVariable("ODDS_MARGIN_BP", 500, { min: 0, max: 5000 }, "House margin in basis points: each runner's decimal odds are `RACE_RUNNERS` × (1 − margin), rounded down to 0.01 (8 runners, 500: 7.60)."),
  roundSeedKey: new OptionalTextVariable(
    "ROUND_SEED_KEY",
    "Secret of at least 32 characters, the same on every node, that seals each race's seed in Redis until `round_finished` reveals it, so a node taking over mid-race finishes with the committed seed. Required in production while `CLOCK_ENABLED=true`; in development a fixed development key when unset.",
  ),
  socketIoCorsOrigins: new ListVariable("SOCKETIO_CORS_ORIGINS", "none (same origin only)", "Comma list of origins allowed to open Socket.IO sessions cross-site, e.g. `https://app.example.com`."),
  writerBatchMax: new IntegerVariable("WRITER_BATCH_MAX", 500, { min: 1, max: 10_000 }, "Most bets written in one transaction."),
  writerConcurrency: new IntegerVariable("WRITER_CONCURRENCY", 2, { min: 1, max: 64 }, "Batches written at once, each in its own transaction (capped at `PG_POOL_MAX`)."),
  writerFlush: new IntegerVariable("WRITER_FLUSH_MS", 20, { min: 1, max: 10_000 }, "Write a partial batch this long after its first command arrived."),
  writerQueueMax: new IntegerVariable("WRITER_QUEUE_MAX", 10_000, { min: 1, max: 10_000_000 }, "Commands waiting for the database; past it, new ones are answered `overloaded`."),
  betMinAmount: new IntegerVariable("BET_MIN_AMOUNT", 1, { min: 1, max: MAX }, "Smallest bet, in minor currency units."),
  betMaxAmount: new IntegerVariable("BET_MAX_AMOUNT", 1_000_000, { min: 1, max: MAX }, "Largest bet, in minor currency units."),
  ingestEnabled: new FlagVariable("INGEST_ENABLED", true, "Consume the `<REDIS_PREFIX>:ingest` stream, so backends can publish feeds through Redis."),
  ingestBatch: new IntegerVariable("INGEST_BATCH", 100, { min: 1, max: 10_000 }, "Most stream entries read and published in one step."),
  ingestClaimIdle: new IntegerVariable("INGEST_CLAIM_IDLE_MS", 30_000, { min: 1000, max: 3_600_000 }, "Take over stream entries left pending this long by a dead node."),
  ingestMaxAttempts: new IntegerVariable(
    "INGEST_MAX_ATTEMPTS",
    3,
    { min: 1, max: 100 },
    "Failed publishes of an ingest batch (while Redis is up) before its entries go out one by one; the one that then fails alone is set aside in `<REDIS_PREFIX>:ingest:rejected` as `publish_failed`.",
  ),
} as const;

/** Every variable the node reads, in the README's order. */
export const CONFIG_VARIABLES: readonly ConfigVariable[] = Object.values(VARIABLES);

const DEV_CREDENTIAL_REFUSED = "is the public development value `npm start` uses; production (GATEWAY_ENV=production, the default) refuses it";

const HMAC_ALGORITHMS: readonly JwsAlgorithm[] = ["HS256", "HS384", "HS512"];
const RSA_ALGORITHMS: readonly JwsAlgorithm[] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
const EC_ALGORITHMS_BY_CURVE: Readonly<Record<string, JwsAlgorithm>> = {
  prime256v1: "ES256",
  secp384r1: "ES384",
  secp521r1: "ES512",
};

function jwtConfig(env: Env, gatewayEnv: GatewayEnv): JwtConfig {
  const secret = VARIABLES.jwtSecret.read(env);
  const keyFile = VARIABLES.jwtPublicKeyFile.read(env);
  const requested = VARIABLES.jwtAlgorithms.read(env);
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
  let allowed: readonly JwsAlgorithm[];
  let defaults: readonly JwsAlgorithm[];
  if (secret !== undefined) {
    if (secret.length < 16) throw new ConfigError("JWT_SECRET", "must be at least 16 characters");
    if (gatewayEnv === "production" && secret === DEV_JWT_SECRET) throw new ConfigError("JWT_SECRET", DEV_CREDENTIAL_REFUSED);
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
    if (!allowed.includes(alg as JwsAlgorithm)) {
      throw new ConfigError("JWT_ALGORITHMS", `"${alg}" does not fit the configured key (allowed: ${allowed.join(", ")})`);
    }
  }

  // Read (and checked) in every environment; enforced in production only.
  const maxLifetimeSeconds = VARIABLES.jwtMaxLifetime.read(env);
  return {
    key,
    algorithms: algorithms as JwsAlgorithm[],
    issuer: VARIABLES.jwtIssuer.read(env),
    audience: VARIABLES.jwtAudience.read(env),
    clockToleranceSeconds: VARIABLES.jwtClockTolerance.read(env),
    maxLifetimeSeconds: gatewayEnv === "production" ? maxLifetimeSeconds : null,
  };
}

function redisUrl(env: Env): string {
  const raw = VARIABLES.redisUrl.read(env);
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

/** `host:port` or `[v6]:port`. */
function redisAddress(variable: string, text: string): RedisAddress {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_.-]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  const host = match?.[1] ?? match?.[2];
  if (host === undefined || !(port >= 1 && port <= 65535)) throw new ConfigError(variable, `"${text}" is not host:port`);
  return { host, port };
}

function redisAddresses(variable: string, items: readonly string[]): RedisAddress[] {
  const addresses = items.map((item) => redisAddress(variable, item));
  if (new Set(items).size !== items.length) throw new ConfigError(variable, "lists an address twice");
  return addresses;
}

/**
 * One of three ways to reach Redis. The variables of the other two must stay
 * unset, so a node never runs half on one and half on another.
 */
function redisTopology(env: Env): RedisTopology {
  const url = redisUrl(env);
  const sentinels = VARIABLES.redisSentinels.read(env);
  const clusterNodes = VARIABLES.redisClusterNodes.read(env);
  const password = VARIABLES.redisPassword.read(env);
  const sentinelMaster = VARIABLES.redisSentinelMaster.read(env);
  const sentinelPassword = VARIABLES.redisSentinelPassword.read(env);
  const customUrl = url !== DEFAULT_REDIS_URL;
  if (sentinels !== undefined && clusterNodes !== undefined) throw new ConfigError("REDIS_SENTINELS", "set REDIS_SENTINELS or REDIS_CLUSTER_NODES, not both");
  if (sentinels === undefined && sentinelMaster !== undefined) throw new ConfigError("REDIS_SENTINEL_MASTER", "only with REDIS_SENTINELS");
  if (sentinels === undefined && sentinelPassword !== undefined) throw new ConfigError("REDIS_SENTINEL_PASSWORD", "only with REDIS_SENTINELS");
  if (sentinels !== undefined) {
    if (customUrl) throw new ConfigError("REDIS_SENTINELS", "set REDIS_URL or REDIS_SENTINELS, not both (the Sentinels say where the master is)");
    if (sentinelMaster === undefined) throw new ConfigError("REDIS_SENTINEL_MASTER", "required with REDIS_SENTINELS: the name the Sentinels monitor the master under");
    return {
      kind: "sentinel",
      sentinels: redisAddresses("REDIS_SENTINELS", sentinels),
      masterName: sentinelMaster,
      ...(sentinelPassword === undefined ? {} : { sentinelPassword }),
      ...(password === undefined ? {} : { password }),
    };
  }
  if (clusterNodes !== undefined) {
    if (customUrl) throw new ConfigError("REDIS_CLUSTER_NODES", "set REDIS_URL or REDIS_CLUSTER_NODES, not both");
    return { kind: "cluster", nodes: redisAddresses("REDIS_CLUSTER_NODES", clusterNodes), ...(password === undefined ? {} : { password }) };
  }
  if (password !== undefined) throw new ConfigError("REDIS_PASSWORD", "only with REDIS_SENTINELS or REDIS_CLUSTER_NODES; a single Redis takes its password in REDIS_URL (redis://:password@host:port)");
  return { kind: "standalone", url };
}

function idleTimeout(env: Env): number {
  const value = VARIABLES.idleTimeout.read(env);
  // uWebSockets.js rejects 1..7: its timer granularity is 4 s.
  if (value > 0 && value < 8) throw new ConfigError("IDLE_TIMEOUT_S", "must be 0 (disabled) or at least 8");
  return value;
}

function postgresConfig(env: Env): PostgresConfig | null {
  const url = VARIABLES.databaseUrl.read(env);
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
  const schema = VARIABLES.pgSchema.read(env);
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new ConfigError("PG_SCHEMA", "lower-case identifier of at most 63 characters");
  const poolMax = VARIABLES.pgPoolMax.read(env);
  return {
    url,
    schema,
    poolMax,
    poolMin: VARIABLES.pgPoolMin.read(env, { max: poolMax }),
    idleTimeoutMs: VARIABLES.pgIdleTimeout.read(env),
    connectTimeoutMs: VARIABLES.pgConnectTimeout.read(env),
    statementTimeoutMs: VARIABLES.pgStatementTimeout.read(env),
  };
}

/** Only for GATEWAY_ENV=development: every node of a development cluster derives the same sealing key from it. */
export const DEVELOPMENT_ROUND_SEED_KEY = "development-round-seed-key-not-secret";
const MIN_SEED_KEY_LENGTH = 32;

function seedSecret(env: Env): string {
  const configured = VARIABLES.roundSeedKey.read(env);
  if (configured !== undefined) {
    if (configured.length < MIN_SEED_KEY_LENGTH) throw new ConfigError("ROUND_SEED_KEY", `must be at least ${MIN_SEED_KEY_LENGTH} characters`);
    return configured;
  }
  if (VARIABLES.env.read(env) === "development") return DEVELOPMENT_ROUND_SEED_KEY;
  throw new ConfigError("ROUND_SEED_KEY", "required in production while CLOCK_ENABLED=true (it keeps each race's seed secret until round_finished)");
}

function clockConfig(env: Env, postgres: PostgresConfig | null): ClockConfig | null {
  if (!VARIABLES.clockEnabled.read(env)) return null;
  if (postgres === null) throw new ConfigError("DATABASE_URL", "required while CLOCK_ENABLED=true (rounds are recorded in Postgres)");
  const leaseTtlMs = VARIABLES.clockLeaseTtl.read(env);
  return {
    waitMs: VARIABLES.roundWait.read(env),
    raceMs: VARIABLES.roundRace.read(env),
    finishMs: VARIABLES.roundFinish.read(env),
    timerUpdateIntervalMs: VARIABLES.timerUpdateInterval.read(env),
    raceSyncIntervalMs: VARIABLES.raceSyncInterval.read(env),
    leaseTtlMs,
    runners: VARIABLES.raceRunners.read(env),
    oddsMarginBp: VARIABLES.oddsMargin.read(env),
    seedSecret: seedSecret(env),
  };
}

function ingestConfig(env: Env): IngestConfig | null {
  if (!VARIABLES.ingestEnabled.read(env)) return null;
  return {
    batch: VARIABLES.ingestBatch.read(env),
    claimIdleMs: VARIABLES.ingestClaimIdle.read(env),
    maxAttempts: VARIABLES.ingestMaxAttempts.read(env),
  };
}

function writerConfig(env: Env): WriterConfig {
  const minBetAmount = VARIABLES.betMinAmount.read(env);
  return {
    maxBatch: VARIABLES.writerBatchMax.read(env),
    concurrency: VARIABLES.writerConcurrency.read(env),
    flushMs: VARIABLES.writerFlush.read(env),
    queueMax: VARIABLES.writerQueueMax.read(env),
    minBetAmount,
    maxBetAmount: VARIABLES.betMaxAmount.read(env, { min: minBetAmount }),
  };
}

function corsOrigins(env: Env): string[] {
  const origins = VARIABLES.socketIoCorsOrigins.read(env) ?? [];
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

function trustedProxies(env: Env): TrustedProxies {
  const entries = VARIABLES.trustedProxies.read(env) ?? DEFAULT_TRUSTED_PROXIES;
  if (entries.length === 1 && entries[0] === "none") return new TrustedProxies([]);
  try {
    return new TrustedProxies(entries);
  } catch (err) {
    if (err instanceof CidrError) throw new ConfigError("TRUSTED_PROXIES", err.message);
    throw err;
  }
}

function limitsConfig(env: Env): LimitsConfig {
  return {
    framesPerSecond: VARIABLES.clientFramesPerSecond.read(env),
    frameBurst: VARIABLES.clientFrameBurst.read(env),
    subscribesPerSecond: VARIABLES.subscribesPerSecond.read(env),
    subscribeBurst: VARIABLES.subscribeBurst.read(env),
    maxConnectionsPerUser: VARIABLES.maxConnectionsPerUser.read(env),
    maxCommandsInFlightPerUser: VARIABLES.maxCommandsInFlightPerUser.read(env),
    connectsPerAddressPerSecond: VARIABLES.connectsPerAddressPerSecond.read(env),
    connectBurstPerAddress: VARIABLES.connectBurstPerAddress.read(env),
    trustedProxies: trustedProxies(env),
  };
}

/** A bound on label values: each namespace is a series per metric, kept by Prometheus. */
const MAX_METRIC_NAMESPACES = 50;

function metricNamespaces(env: Env): string[] {
  const namespaces = VARIABLES.metricNamespaces.read(env) ?? [];
  if (namespaces.length > MAX_METRIC_NAMESPACES) throw new ConfigError("METRIC_NAMESPACES", `at most ${MAX_METRIC_NAMESPACES} namespaces`);
  for (const namespace of namespaces) {
    if (!/^[A-Za-z0-9_\-.@|=+/]{1,64}$/.test(namespace)) throw new ConfigError("METRIC_NAMESPACES", `"${namespace}" is not a namespace (1-64 channel-name characters, no ":")`);
    if (namespace === "other") throw new ConfigError("METRIC_NAMESPACES", '"other" is the label of every namespace not listed');
  }
  return namespaces;
}

function namespaceList(variable: ListVariable, env: Env): string[] {
  const namespaces = variable.read(env) ?? [];
  if (namespaces.length > MAX_METRIC_NAMESPACES) throw new ConfigError(variable.name, `at most ${MAX_METRIC_NAMESPACES} namespaces`);
  for (const namespace of namespaces) {
    if (!/^[A-Za-z0-9_\-.@|=+/]{1,64}$/.test(namespace)) throw new ConfigError(variable.name, `"${namespace}" is not a namespace (1-64 channel-name characters, no ":")`);
  }
  return namespaces;
}

function presenceConfig(env: Env): PresenceConfig {
  const namespaces = namespaceList(VARIABLES.presenceNamespaces, env);
  // One per connected user, and each user's own: nothing for anyone else to see there.
  if (namespaces.includes("user")) throw new ConfigError("PRESENCE_NAMESPACES", "personal channels (user) keep no presence");
  const joinLeaveNamespaces = namespaceList(VARIABLES.presenceJoinLeave, env);
  const stray = joinLeaveNamespaces.find((namespace) => !namespaces.includes(namespace));
  if (stray !== undefined) throw new ConfigError("PRESENCE_JOIN_LEAVE", `"${stray}" is not in PRESENCE_NAMESPACES`);
  return { namespaces, joinLeaveNamespaces, maxMembers: VARIABLES.presenceMaxMembers.read(env) };
}

/** Parses and validates; throws ConfigError naming the first bad variable. */
function historyPolicy(env: Env, channelStateTtlSeconds: number): HistoryPolicy {
  let policy: HistoryPolicy;
  try {
    policy = HistoryPolicy.parse(VARIABLES.channelHistory.read(env));
  } catch (err) {
    if (err instanceof HistoryPolicyError) throw new ConfigError("CHANNEL_HISTORY", err.message);
    throw err;
  }
  // History that outlived its channel state would be numbered by a new epoch.
  if (channelStateTtlSeconds > 0 && policy.longestTtlSeconds() > channelStateTtlSeconds) {
    throw new ConfigError("CHANNEL_HISTORY", `a ttl (${policy.longestTtlSeconds()} s) is longer than CHANNEL_STATE_TTL_S (${channelStateTtlSeconds} s)`);
  }
  return policy;
}

export function loadConfig(env: Env): GatewayConfig {
  const gatewayEnv = VARIABLES.env.read(env);
  const publishKey = VARIABLES.publishKey.read(env);
  if (publishKey === undefined) throw new ConfigError("PUBLISH_KEY", "required");
  if (publishKey.length < 16) throw new ConfigError("PUBLISH_KEY", "must be at least 16 characters");
  if (gatewayEnv === "production" && publishKey === DEV_PUBLISH_KEY) throw new ConfigError("PUBLISH_KEY", DEV_CREDENTIAL_REFUSED);

  const redisPrefix = VARIABLES.redisPrefix.read(env);
  if (!/^[A-Za-z0-9_\-.:]{1,64}$/.test(redisPrefix)) {
    throw new ConfigError("REDIS_PREFIX", "1-64 characters of A-Z a-z 0-9 _ - . :");
  }
  const nodeId = VARIABLES.nodeId.read(env);
  if (!/^[A-Za-z0-9_\-.]{1,64}$/.test(nodeId)) {
    throw new ConfigError("NODE_ID", "1-64 characters of A-Z a-z 0-9 _ - .");
  }

  const postgres = postgresConfig(env);
  const channelStateTtlSeconds = VARIABLES.channelStateTtl.read(env);
  return {
    nodeId,
    env: gatewayEnv,
    host: VARIABLES.host.read(env),
    port: VARIABLES.port.read(env),
    logLevel: VARIABLES.logLevel.read(env),
    redis: redisTopology(env),
    redisWaitReplicas: VARIABLES.redisWaitReplicas.read(env),
    redisPrefix,
    jwt: jwtConfig(env, gatewayEnv),
    publishKey,
    publishMaxBodyBytes: VARIABLES.publishMaxBodyBytes.read(env),
    publishMaxBatch: VARIABLES.publishMaxBatch.read(env),
    maxJsonDepth: VARIABLES.maxJsonDepth.read(env),
    maxFrameBytes: VARIABLES.maxFrameBytes.read(env),
    maxSubscriptions: VARIABLES.maxSubscriptions.read(env),
    idleTimeoutSeconds: idleTimeout(env),
    maxBackpressureBytes: VARIABLES.maxBackpressureBytes.read(env),
    wsCompression: { mode: VARIABLES.wsCompression.read(env), minBytes: VARIABLES.wsCompressionMinBytes.read(env) },
    channelStateTtlSeconds,
    history: historyPolicy(env, channelStateTtlSeconds),
    personalChannelShards: VARIABLES.personalChannelShards.read(env),
    limits: limitsConfig(env),
    metricNamespaces: metricNamespaces(env),
    presence: presenceConfig(env),
    revocationTtlSeconds: VARIABLES.jwtMaxLifetime.read(env) + 2 * VARIABLES.jwtClockTolerance.read(env),
    idempotencyWindowMs: VARIABLES.idempotencyWindow.read(env) * 1000,
    unsubscribeDelayMs: VARIABLES.unsubscribeDelay.read(env),
    drainWindowMs: VARIABLES.drainWindow.read(env),
    memoryLimitMb: VARIABLES.memoryLimit.read(env),
    postgres,
    clock: clockConfig(env, postgres),
    ingest: ingestConfig(env),
    writer: writerConfig(env),
    socketIoCorsOrigins: corsOrigins(env),
  };
}
