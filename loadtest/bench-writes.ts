/**
 * npm run bench:writes [-- --quick] [-- --step-seconds N] [-- --threshold-ms 100]
 *
 * The capacity of the batching writer against one INSERT per command, in one
 * run, on the same Postgres with its durable settings (fsync and
 * synchronous_commit on, checked and printed), the same SQL and the same
 * guarantees: the per-command path is PgBetStore with batches of one, each in
 * its own transaction; the batching one is BatchingWriter with the gateway's
 * defaults (WRITER_BATCH_MAX 500, WRITER_FLUSH_MS 20, WRITER_CONCURRENCY 2,
 * PG_POOL_MAX 10).
 *
 * Open loop: commands are offered at a fixed rate whatever the acknowledgements
 * do (a closed loop, where each client waits for its ack before the next
 * bet, measures the clients, not the writer). The rate climbs by √2 per step
 * until the p99 of submit → committed acknowledgement passes the threshold
 * (100 ms) in two steps in a row, or the acknowledgements fall behind the
 * offer; a writer's capacity is the highest rate it carried within the
 * threshold. Commands still unanswered when a step's drain ends count as
 * over the threshold.
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
import { LatencyHistogram } from "./lib/histogram.js";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    "step-seconds": { type: "string" },
    "threshold-ms": { type: "string", default: "100" },
    /** First offered rate of each writer: well below its capacity, so the search has steps to climb. */
    "start-per-command": { type: "string", default: "100" },
    "start-batching": { type: "string", default: "1000" },
  },
  strict: true,
});
const STEP_SECONDS = Number(values["step-seconds"] ?? (values.quick ? 2 : 5));
const THRESHOLD_MS = Number(values["threshold-ms"]);
const START_PER_COMMAND = Number(values["start-per-command"]);
const START_BATCHING = Number(values["start-batching"]);
/** The gateway's defaults (gateway/src/config.ts). */
const POOL_MAX = 10;
const WRITER_BATCH_MAX = 500;
const WRITER_FLUSH_MS = 20;
const WRITER_CONCURRENCY = 2;
const WRITER_QUEUE_MAX = 10_000;
/** Commands are issued in bursts this often, each the number due since the last. */
const TICK_MS = 2;
/** After a step, how long unanswered commands may still arrive before they count as over the threshold. */
const DRAIN_MS = 5000;
/** A step also fails when its acknowledgements fall this far behind what was offered. */
const MIN_CARRIED = 0.95;
const MAX_RATE = 200_000;
const USERS = 10_000;

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

interface Step {
  readonly writer: string;
  readonly offered: number;
  /** Commands acknowledged as committed within the step and its drain, per second of the step. */
  readonly carried: number;
  readonly latency: LatencyHistogram;
  /** Unanswered at the end of the drain, or refused (queue full): over the threshold by definition. */
  readonly unanswered: number;
  readonly refused: number;
  readonly passed: boolean;
}

type Submit = (command: BetCommand) => Promise<boolean>;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line: string): void => void process.stderr.write(`[bench:writes] ${line}\n`);

/** Every command of the run, whatever its step: the rows in the table must match `accepted` at the end. */
interface Tally {
  /** The next command's number: idempotency keys never repeat within a writer. */
  key: number;
  issued: number;
  answered: number;
  accepted: number;
}

const newTally = (): Tally => ({ key: 0, issued: 0, answered: 0, accepted: 0 });

/** Offers `rate` commands a second for STEP_SECONDS, then waits (bounded) for the stragglers. */
async function step(writer: string, rate: number, submit: Submit, roundId: number, tally: Tally): Promise<Step> {
  const latency = new LatencyHistogram();
  const total = Math.round(rate * STEP_SECONDS);
  let issued = 0;
  let answered = 0;
  let committed = 0;
  let refused = 0;
  // Answers after the drain belong to no step's figures (they were counted as over the threshold), only to the tally.
  let judged = false;
  const started = performance.now();
  while (issued < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
    for (; issued < due; issued++) {
      const key = tally.key++;
      tally.issued++;
      const sent = performance.now();
      submit({ userId: `${writer}-${key % USERS}`, roundId, selection: (key % 8) + 1, amount: 100, odds: BENCH_ODDS, idempotencyKey: `${writer}-${key}` }).then(
        (ok) => {
          tally.answered++;
          if (ok) tally.accepted++;
          if (judged) return;
          answered++;
          if (!ok) {
            refused++;
            return;
          }
          committed++;
          latency.record(performance.now() - sent);
        },
        (err: unknown) => {
          tally.answered++;
          if (!judged) {
            answered++;
            refused++;
          }
          log(`${writer}: submit failed: ${err instanceof Error ? err.message : String(err)}`);
        },
      );
    }
    await sleep(TICK_MS);
  }
  const drainUntil = performance.now() + DRAIN_MS;
  while (answered < total && performance.now() < drainUntil) await sleep(10);
  judged = true;
  const unanswered = total - answered;
  // Percentiles over everything offered: what is missing or refused counts as over the threshold.
  for (let i = 0; i < unanswered + refused; i++) latency.record(Number.POSITIVE_INFINITY);
  const carried = committed / STEP_SECONDS;
  const passed = latency.percentile(99) <= THRESHOLD_MS && carried >= MIN_CARRIED * rate;
  // Let the writer empty before the next step starts.
  const settleUntil = performance.now() + DRAIN_MS;
  while (tally.answered < tally.issued && performance.now() < settleUntil) await sleep(10);
  return { writer, offered: rate, carried, latency, unanswered, refused, passed };
}

/**
 * Steps up until the writer is clearly past its capacity: two steps in a row
 * over the threshold, or one whose commits fell behind the offer (saturated).
 * One step over the threshold between passing ones is a stall of the shared
 * machine (another process held the cores for 100 ms), not the writer's limit.
 */
async function capacity(writer: string, start: number, submit: Submit, roundId: number, tally: Tally): Promise<Step[]> {
  const steps: Step[] = [];
  let failedInARow = 0;
  for (let rate = start; rate <= MAX_RATE; rate = Math.round(rate * Math.SQRT2)) {
    const result = await step(writer, rate, submit, roundId, tally);
    steps.push(result);
    const saturated = result.carried < MIN_CARRIED * rate;
    log(`${writer}: ${rate}/s offered, ${Math.round(result.carried)}/s committed, p99 ${fmt(result.latency.percentile(99))} ms${result.passed ? "" : saturated ? " — saturated" : " — past the threshold"}`);
    failedInARow = result.passed ? 0 : failedInARow + 1;
    if (saturated || failedInARow >= 2) break;
  }
  return steps;
}

const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : "> drain");

async function main(): Promise<void> {
  const load = os.loadavg();
  const dataDir = path.join(os.tmpdir(), `gw-bench-writes-${process.pid}`);
  // Durable on purpose (no `fast`): fsync, synchronous_commit and full_page_writes at their defaults.
  const postgres = await startPostgres({ dataDir });
  const pool = new pg.Pool({ connectionString: postgres.url, max: POOL_MAX });
  // Idle clients see Postgres go away at the end of the run; that is expected.
  pool.on("error", (err) => process.stderr.write(`idle pg client: ${err.message}\n`));
  try {
    const settings = await pool.query<{ name: string; setting: string }>("SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method') ORDER BY name");
    const durability = settings.rows.map((row) => `${row.name}=${row.setting}`).join(", ");
    if (!settings.rows.some((row) => row.name === "fsync" && row.setting === "on")) throw new Error(`Postgres must run with fsync on: ${durability}`);
    await migrate(pool, "public");
    const roundId = 1;
    await pool.query(
      "INSERT INTO rounds (id, started_at, betting_closes_at, runners, odds, recorded_by) VALUES ($1, now(), now() + interval '1 day', 8, $2, 'bench') ON CONFLICT (id) DO NOTHING",
      [roundId, JSON.stringify(Array.from({ length: 8 }, () => BENCH_ODDS))],
    );
    const store = new PgBetStore(pool, "bench", noMetrics);
    const writerLog = pino({ level: "warn" });
    const accepted = (outcome: BetOutcome | undefined): boolean => outcome?.ok === true && !outcome.bet.duplicate;

    log("one INSERT per command (a transaction each)");
    const tallies = { perCommand: newTally(), batching: newTally() };
    const perCommand = await capacity("per-command", START_PER_COMMAND, async (command) => accepted((await store.insertBatch([command]))[0]), roundId, tallies.perCommand);

    log(`batching writer (${WRITER_BATCH_MAX} per batch, ${WRITER_FLUSH_MS} ms, ${WRITER_CONCURRENCY} at once)`);
    const batching = new BatchingWriter<BetCommand, BetOutcome>({
      maxBatch: WRITER_BATCH_MAX,
      maxDelayMs: WRITER_FLUSH_MS,
      capacity: WRITER_QUEUE_MAX,
      concurrency: WRITER_CONCURRENCY,
      write: (items) => store.insertBatch(items),
      isRetryable: isRetryablePgError,
      metrics: noMetrics,
      onError: (err) => writerLog.warn({ err }, "batch failed"),
    });
    const batched = await capacity("batching", START_BATCHING, async (command) => {
      const outcome = await batching.submit(command);
      return outcome.ok && accepted(outcome.value);
    }, roundId, tallies.batching);
    await batching.stop(10_000);
    // Every command answered before the rows are counted (bounded: the writers are idle by now).
    const allAnswered = (): boolean => Object.values(tallies).every((t) => t.answered === t.issued);
    const answeredBy = performance.now() + DRAIN_MS;
    while (!allAnswered() && performance.now() < answeredBy) await sleep(10);
    const acceptedCommands = tallies.perCommand.accepted + tallies.batching.accepted;

    const committedRows = Number((await pool.query<{ count: string }>("SELECT count(*)::text AS count FROM bets")).rows[0]?.count);
    const best = (steps: readonly Step[]): number => Math.max(0, ...steps.filter((s) => s.passed).map((s) => s.offered));
    const [slow, fast] = [best(perCommand), best(batched)];
    const table = [
      "| writer | offered rows/s | committed rows/s | ack p50 ms | ack p95 ms | ack p99 ms | ack max ms | unanswered / refused | within the threshold |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---|",
      ...[...perCommand, ...batched].map(
        (s) =>
          `| ${s.writer} | ${s.offered} | ${Math.round(s.carried)} | ${fmt(s.latency.percentile(50))} | ${fmt(s.latency.percentile(95))} | ${fmt(s.latency.percentile(99))} | ${fmt(s.latency.percentile(100))} | ${s.unanswered} / ${s.refused} | ${s.passed ? "yes" : "**no**"} |`,
      ),
    ];
    const ratio = slow > 0 ? fast / slow : Number.NaN;
    const report = [
      `# npm run bench:writes${values.quick ? " -- --quick" : ""}`,
      "",
      `${new Date().toISOString()} · ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"} · Node ${process.version} · load average at start ${load.map((l) => l.toFixed(2)).join(" ")}, at the end ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
      `Postgres ${durability}; pg pool ${POOL_MAX}; open loop, ${STEP_SECONDS} s per step, the rate ×√2 per step until two steps in a row miss or the commits fall behind; capacity = the highest offered rate with ack p99 ≤ ${THRESHOLD_MS} ms and ≥ ${MIN_CARRIED * 100} % of it committed.`,
      "",
      ...table,
      "",
      `| writer | capacity rows/s |`,
      `|---|---:|`,
      `| one INSERT per command | ${slow} |`,
      `| batching writer | ${fast} |`,
      "",
      `batching / per-command capacity: ${fmt(ratio)}× (target ≥ 20×: ${ratio >= 20 ? "met" : "**missed**"})`,
      `rows in the bets table: ${committedRows}; commands acknowledged as committed: ${acceptedCommands}${committedRows === acceptedCommands ? "" : " — **mismatch**"}`,
      "",
    ].join("\n");
    process.stdout.write(report);
    if (committedRows !== acceptedCommands || !allAnswered()) process.exitCode = 1;
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
