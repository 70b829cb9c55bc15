/**
 * Everything that needs Postgres: the pool and its health probe, the schema
 * migrations (retried until Postgres answers), and the batching bet writer.
 * Without DATABASE_URL there is no database and its shutdown steps do nothing.
 */

import type pg from "pg";
import type { Logger } from "pino";
import type { DatabaseClock } from "../clock/round-authority.js";
import type { GatewayConfig } from "../config.js";
import type { NotReadyReason } from "../http/probes.js";
import type { ShutdownStep } from "../lifecycle/shutdown.js";
import { BatchingWriter, type WriterMetrics } from "../store/batching-writer.js";
import { PgBetStore, type BetCommand, type BetOutcome, type QueryTimer } from "../store/bet-store.js";
import { migrateWhenReachable } from "../store/migrations.js";
import { isRetryablePgError } from "../store/pg-errors.js";
import { PgHealth } from "../store/pg-health.js";
import { createPool, type PoolState } from "../store/pg-pool.js";

const PG_PROBE_MS = 2000;
/** SIGTERM waits this long for queued bets; later ones are answered "unavailable" (never acknowledged). */
const WRITER_STOP_TIMEOUT_MS = 5000;

export interface DatabaseMetrics extends WriterMetrics, QueryTimer {
  watchPgPool(pool: PoolState, max: number): void;
  pgUp(up: boolean): void;
  /** This node's clock minus the database's, in seconds, as the last probe measured it. */
  pgClockSkew(seconds: number): void;
}

export interface Database {
  readonly pool: pg.Pool;
  readonly writer: BatchingWriter<BetCommand, BetOutcome>;
  /** How far this node's clock is from the database's, whose clock decides the betting window. */
  readonly clock: DatabaseClock;
  /** Resolves true once the schema is migrated, false when the node began stopping first. */
  readonly migrated: Promise<boolean>;
  isMigrated(): boolean;
  /** Why bets cannot be written now, or null. */
  notReadyReason(): Extract<NotReadyReason, `postgres ${string}`> | null;
}

export interface DatabaseWiring {
  /** Null when DATABASE_URL is unset. */
  readonly database: Database | null;
  readonly steps: {
    /** Commits queued bets so they are acknowledged; run before the sockets close. */
    readonly flushWriter: ShutdownStep;
    readonly stopProbe: ShutdownStep;
    readonly closePool: ShutdownStep;
  };
}

export function wireDatabase(config: GatewayConfig, metrics: DatabaseMetrics, log: Logger, stopping: AbortSignal): DatabaseWiring {
  const database = config.postgres === null ? null : startDatabase(config, config.postgres, metrics, log, stopping);
  return {
    database,
    steps: {
      flushWriter: { name: "flush bet writer", run: () => database?.writer.stop(WRITER_STOP_TIMEOUT_MS) },
      stopProbe: { name: "stop postgres probe", run: () => database?.health.stop() },
      closePool: { name: "close postgres pool", run: () => database?.pool.end() },
    },
  };
}

function startDatabase(config: GatewayConfig, postgres: NonNullable<GatewayConfig["postgres"]>, metrics: DatabaseMetrics, log: Logger, stopping: AbortSignal): Database & { readonly health: PgHealth } {
  const pool = createPool(postgres, log);
  metrics.watchPgPool(pool, postgres.poolMax);
  const betStore = new PgBetStore(pool, config.nodeId, metrics);
  const writer = new BatchingWriter<BetCommand, BetOutcome>({
    maxBatch: config.writer.maxBatch,
    maxDelayMs: config.writer.flushMs,
    capacity: config.writer.queueMax,
    concurrency: Math.min(config.writer.concurrency, postgres.poolMax),
    write: (items) => betStore.insertBatch(items),
    isRetryable: isRetryablePgError,
    metrics,
    onError: (err, attempt, items) => log.warn({ err, attempt, items }, "bet batch failed"),
  });
  const health = new PgHealth(pool, PG_PROBE_MS, log, (up, nodeAheadMs) => {
    metrics.pgUp(up);
    if (nodeAheadMs !== null) metrics.pgClockSkew(nodeAheadMs / 1000);
    if (up) writer.storeIsUp();
  });
  health.start();

  let isMigrated = false;
  const migrated = migrateWhenReachable(pool, postgres.schema, log, stopping);
  void migrated.then((done) => {
    isMigrated = done;
  });
  return {
    pool,
    writer,
    clock: health,
    health,
    migrated,
    isMigrated: () => isMigrated,
    notReadyReason: () => {
      if (!isMigrated) return "postgres schema not migrated yet";
      if (!health.isUp() || !writer.healthy()) return "postgres unavailable";
      return null;
    },
  };
}
