/**
 * npm run bench:writes [-- --quick]
 *
 * The batching writer against one INSERT per command, side by side on the
 * same Postgres (durable settings: fsync and synchronous_commit on), the same
 * SQL, the same guarantees: the per-command path is PgBetStore with batches
 * of one, each in its own transaction. Many concurrent clients each place bets
 * one after another; ack latency is submit → committed answer.
 */

import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { pino } from "pino";
import { migrate } from "../gateway/src/store/migrations.js";
import { BatchingWriter, type WriterMetrics } from "../gateway/src/store/batching-writer.js";
import { PgBetStore, type BetCommand, type BetOutcome } from "../gateway/src/store/bet-store.js";
import { isRetryablePgError } from "../gateway/src/store/pg-errors.js";
import { startPostgres } from "../scripts/lib/postgres.js";
import { stopAll } from "../scripts/lib/process.js";

interface Run {
  readonly name: string;
  readonly rows: number;
  readonly seconds: number;
  readonly latenciesMs: number[];
}

const { values } = parseArgs({
  options: { quick: { type: "boolean", default: false }, clients: { type: "string" }, bets: { type: "string" }, concurrency: { type: "string" } },
  strict: true,
});
const CLIENTS = Number(values.clients ?? (values.quick ? 100 : 400));
const BETS_PER_CLIENT = Number(values.bets ?? (values.quick ? 20 : 50));
const POOL_MAX = 10;
/** The gateway's default WRITER_CONCURRENCY. */
const WRITER_CONCURRENCY = Number(values.concurrency ?? 2);

const noMetrics: WriterMetrics & { pgQuery(operation: string, seconds: number): void } = {
  writerCapacity: () => undefined,
  writerQueued: () => undefined,
  writerFlushed: () => undefined,
  writerFailed: () => undefined,
  writerRejectedCommand: () => undefined,
  pgQuery: () => undefined,
};

/** Every runner's odds in the bench round; bets repeat them, as clients do. */
const BENCH_ODDS = 7.6;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function drive(name: string, submit: (command: BetCommand) => Promise<boolean>, roundId: number): Promise<Run> {
  const latenciesMs: number[] = [];
  let rows = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, client) => {
      for (let i = 0; i < BETS_PER_CLIENT; i++) {
        const sent = performance.now();
        const ok = await submit({ userId: `${name}-${client}`, roundId, selection: (i % 8) + 1, amount: 100, odds: BENCH_ODDS, idempotencyKey: `k-${client}-${i}-${name}` });
        latenciesMs.push(performance.now() - sent);
        if (ok) rows++;
      }
    }),
  );
  return { name, rows, seconds: (performance.now() - started) / 1000, latenciesMs: latenciesMs.sort((a, b) => a - b) };
}

async function main(): Promise<void> {
  const dataDir = path.join(os.tmpdir(), `gw-bench-writes-${process.pid}`);
  const postgres = await startPostgres({ dataDir });
  const pool = new pg.Pool({ connectionString: postgres.url, max: POOL_MAX });
  // Idle clients see Postgres go away at the end of the run; that is expected.
  pool.on("error", (err) => process.stderr.write(`idle pg client: ${err.message}\n`));
  try {
    await migrate(pool, "public");
    const roundId = 1;
    await pool.query(
      "INSERT INTO rounds (id, started_at, betting_closes_at, runners, odds, recorded_by) VALUES ($1, now(), now() + interval '1 day', 8, $2, 'bench') ON CONFLICT (id) DO NOTHING",
      [roundId, JSON.stringify(Array.from({ length: 8 }, () => BENCH_ODDS))],
    );
    const store = new PgBetStore(pool, "bench", noMetrics);
    const log = pino({ level: "warn" });

    const batching = new BatchingWriter<BetCommand, BetOutcome>({
      maxBatch: 500,
      maxDelayMs: 20,
      capacity: 100_000,
      concurrency: WRITER_CONCURRENCY,
      write: (items) => store.insertBatch(items),
      isRetryable: isRetryablePgError,
      metrics: noMetrics,
      onError: (err) => log.warn({ err }, "batch failed"),
    });
    const runs: Run[] = [];
    runs.push(await drive("batching", async (command) => {
      const outcome = await batching.submit(command);
      return outcome.ok && outcome.value.ok;
    }, roundId));
    await batching.stop(10_000);
    runs.push(await drive("per-command", async (command) => {
      const [outcome] = await store.insertBatch([command]);
      return outcome?.ok === true;
    }, roundId));

    const { rows } = await pool.query<{ count: string }>("SELECT count(*)::text AS count FROM bets");
    const expected = CLIENTS * BETS_PER_CLIENT * runs.length;
    const header = `bench:writes — ${CLIENTS} concurrent clients × ${BETS_PER_CLIENT} bets each, writer concurrency ${WRITER_CONCURRENCY}, pg pool ${POOL_MAX}, Postgres with fsync on, ${os.cpus().length} cores, load average ${os.loadavg()[0]?.toFixed(1)}`;
    const table = [
      "| writer | rows committed | seconds | rows/s | ack p50 ms | ack p95 ms | ack p99 ms |",
      "|---|---:|---:|---:|---:|---:|---:|",
      ...runs.map((run) => `| ${run.name} | ${run.rows} | ${run.seconds.toFixed(2)} | ${Math.round(run.rows / run.seconds)} | ${percentile(run.latenciesMs, 50).toFixed(1)} | ${percentile(run.latenciesMs, 95).toFixed(1)} | ${percentile(run.latenciesMs, 99).toFixed(1)} |`),
    ];
    const [fast, slow] = runs as [Run, Run];
    const ratio = (fast.rows / fast.seconds) / (slow.rows / slow.seconds);
    const p95Ratio = percentile(slow.latenciesMs, 95) / percentile(fast.latenciesMs, 95);
    process.stdout.write(`${header}\n\n${table.join("\n")}\n\nbatching / per-command: ${ratio.toFixed(1)}× rows/s, ${p95Ratio.toFixed(1)}× lower p95 ack latency\nrows in table: ${rows[0]?.count} (expected ${expected})\n`);
    if (Number(rows[0]?.count) !== expected) process.exitCode = 1;
  } finally {
    await pool.end();
    await postgres.stop();
    await rm(dataDir, { recursive: true, force: true });
    await stopAll();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:writes failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
