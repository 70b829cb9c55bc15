/**
 * The node's Postgres pool, configured once from PostgresConfig. Every
 * connection gets the gateway's schema on its search_path and a server-side
 * statement timeout, so a stuck query cannot hold a pooled connection forever.
 */

import pg from "pg";
import type { Logger } from "pino";
import type { PostgresConfig } from "../config.js";

/** What the pool metrics read at every scrape; pg.Pool has it. */
export interface PoolState {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

export function createPool(config: PostgresConfig, log: Logger): pg.Pool {
  const pool = new pg.Pool({
    connectionString: config.url,
    max: config.poolMax,
    min: config.poolMin,
    idleTimeoutMillis: config.idleTimeoutMs,
    connectionTimeoutMillis: config.connectTimeoutMs,
    statement_timeout: config.statementTimeoutMs,
    options: `-c search_path=${config.schema}`,
    application_name: "realtime-gateway",
  });
  // An idle client losing its server (Postgres restart) emits here; without a
  // listener the process would crash. The pool replaces the client by itself.
  pool.on("error", (err) => {
    log.warn({ err }, "idle postgres connection failed");
  });
  return pool;
}
