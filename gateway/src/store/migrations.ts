/**
 * Versioned schema migrations, applied at start-up. Several nodes starting at
 * once serialize on a transaction-scoped advisory lock, so each migration runs
 * exactly once and a node never sees a half-migrated schema.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import type { Logger } from "pino";
import { RetryBackoff } from "../time/retry-backoff.js";
import { withTransaction } from "./transaction.js";

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** Append only: never edit a migration that has shipped. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "rounds",
    sql: `
      CREATE TABLE rounds (
        id               bigint PRIMARY KEY CHECK (id > 0),
        started_at       timestamptz NOT NULL,
        race_started_at  timestamptz,
        finished_at      timestamptz,
        result           jsonb,
        recorded_by      text NOT NULL,
        updated_at       timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 2,
    name: "bets",
    sql: `
      -- Bets are accepted while placed_at < betting_closes_at (the planned race
      -- start) and the round is not settled; settled_at is set once, together
      -- with the set-based settlement of the round's bets.
      ALTER TABLE rounds
        ADD COLUMN betting_closes_at timestamptz,
        ADD COLUMN runners           integer CHECK (runners > 1),
        ADD COLUMN settled_at        timestamptz;

      CREATE TABLE bets (
        id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id          text NOT NULL,
        round_id         bigint NOT NULL REFERENCES rounds (id),
        selection        integer NOT NULL CHECK (selection > 0),
        amount           bigint NOT NULL CHECK (amount > 0),
        idempotency_key  text NOT NULL,
        placed_at        timestamptz NOT NULL,
        node             text NOT NULL,
        status           text NOT NULL DEFAULT 'accepted' CHECK (status IN ('accepted', 'won', 'lost')),
        payout           bigint,
        settled_at       timestamptz,
        UNIQUE (user_id, idempotency_key)
      );
      CREATE INDEX bets_unsettled_by_round ON bets (round_id) WHERE status = 'accepted';
    `,
  },
  {
    version: 3,
    name: "fair rounds, odds, void and settlement notices",
    sql: `
      -- commitment is written at the race start, seed and result only at the
      -- finish: before round_finished no row reveals the outcome. voided_at is
      -- set (with settled_at) when a round can no longer finish; notified_at
      -- once every bettor of a settled round has been sent bet_settled.
      ALTER TABLE rounds
        ADD COLUMN odds        jsonb,
        ADD COLUMN commitment  text CHECK (commitment ~ '^[0-9a-f]{64}$'),
        ADD COLUMN seed        text CHECK (seed ~ '^[0-9a-f]{64}$'),
        ADD COLUMN voided_at   timestamptz,
        ADD COLUMN notified_at timestamptz;
      -- Rounds settled before this migration owe no notices: nobody was promised any.
      UPDATE rounds SET notified_at = settled_at WHERE settled_at IS NOT NULL;
      CREATE INDEX rounds_unsettled ON rounds (id) WHERE settled_at IS NULL;
      CREATE INDEX rounds_unnotified ON rounds (id) WHERE settled_at IS NOT NULL AND notified_at IS NULL;

      -- odds: what the player saw, equal to the round's odds for the selection
      -- (NULL for bets placed before odds existed: they pay amount × runners).
      ALTER TABLE bets
        ADD COLUMN odds numeric(8, 2) CHECK (odds >= 1),
        DROP CONSTRAINT bets_status_check,
        ADD CONSTRAINT bets_status_check CHECK (status IN ('accepted', 'won', 'lost', 'void'));
      CREATE INDEX bets_by_round ON bets (round_id);
    `,
  },
];

// Any fixed number; it only has to be the same on every node.
const MIGRATION_LOCK_KEY = 7_340_021;

export async function migrate(pool: pg.Pool, schema: string, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  return withTransaction(pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(`SET LOCAL search_path TO ${schema}`);
    await client.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
    );
    const applied = new Set((await client.query<{ version: number }>("SELECT version FROM schema_migrations")).rows.map((row) => row.version));
    const ran: number[] = [];
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [migration.version, migration.name]);
      ran.push(migration.version);
    }
    return ran;
  });
}

/**
 * Retries migrate() with capped backoff until it succeeds or `stopping`
 * aborts: a node may start before Postgres does. Resolves true once the
 * schema is up to date, false when stopped first.
 */
export async function migrateWhenReachable(pool: pg.Pool, schema: string, log: Logger, stopping: AbortSignal): Promise<boolean> {
  const backoff = new RetryBackoff({ initialDelayMs: 200, maxDelayMs: 5000 });
  while (!stopping.aborted) {
    try {
      const ran = await migrate(pool, schema);
      log.info({ schema, applied: ran }, ran.length > 0 ? "migrations applied" : "schema up to date");
      return true;
    } catch (err) {
      const retryInMs = backoff.next();
      log.warn({ err, retryInMs }, "migrations failed; retrying");
      // An abort ends the wait early; the loop condition then ends the retries.
      await sleep(retryInMs, undefined, { signal: stopping }).catch((waitError: unknown) => {
        if (!stopping.aborted) throw waitError;
      });
    }
  }
  return false;
}
