/**
 * Stopping what a dead `npm start` left running. Used by the watchdog the moment its
 * supervisor dies, and by the next `npm start` when the watchdog died too. Only processes the
 * start record proves to be that run's (pid and start tick, same boot) are ever signalled;
 * nothing is looked up by name or port.
 */

import { rm } from "node:fs/promises";
import { bootId, groupMembers, isRunning, signalGroupOf, type ProcessIdentity } from "./process-identity.js";
import { readRecord, removeRecord, setAsideRecord, type RecordedProcess, type StartRecord } from "./start-record.js";

/** Clean stop per stage: gateways drain for up to 10 s by default, Postgres checkpoints. */
const STOP_TIMEOUT_MS = 15_000;
const KILL_TIMEOUT_MS = 5_000;
/** How long a dead run's watchdog may take before the next npm start takes over: every stage's clean stop. */
const WATCHDOG_GRACE_MS = 4 * STOP_TIMEOUT_MS;
const POLL_MS = 50;

export type Say = (line: string) => void;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `done()` or `timeoutMs`; true when done. */
export async function pollUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (done()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
}

const anythingLeft = (proc: ProcessIdentity): boolean => isRunning(proc) || groupMembers(proc).length > 0;

async function stopOne(proc: RecordedProcess, say: Say): Promise<void> {
  const label = `${proc.name} (pid ${proc.pid})`;
  if (signalGroupOf(proc, proc.stopSignal) === 0) return;
  if (await pollUntil(() => !anythingLeft(proc), STOP_TIMEOUT_MS)) {
    say(`  ${label}: stopped (${proc.stopSignal})`);
    return;
  }
  signalGroupOf(proc, "SIGKILL");
  if (await pollUntil(() => !anythingLeft(proc), KILL_TIMEOUT_MS)) {
    say(`  ${label}: did not stop within ${STOP_TIMEOUT_MS / 1000} s of ${proc.stopSignal}; killed (SIGKILL)`);
  } else {
    say(`  ${label}: still running after SIGKILL; stop it by hand (${proc.command})`);
  }
}

/** The processes of `record` that are still running (leaders, or members that outlived them). */
function survivors(record: StartRecord): RecordedProcess[] {
  if (record.bootId !== bootId()) return [];
  return record.stages.flatMap((stage) => stage.processes).filter(anythingLeft);
}

/**
 * Stops what `record` lists, later stages first, the processes of one stage together, each
 * with its own clean signal and SIGKILL after a bound; then removes the run's temp
 * directory. Idempotent: what is already gone is skipped.
 */
export async function stopLeftovers(record: StartRecord, say: Say): Promise<void> {
  // After a reboot nothing of that run can be running, and its start ticks mean nothing.
  if (record.bootId === bootId()) {
    for (const stage of [...record.stages].reverse()) {
      await Promise.all(stage.processes.map((proc) => stopOne(proc, say)));
    }
  }
  await rm(record.tempDir, { recursive: true, force: true });
}

export interface ClearOptions {
  /** Progress, on the terminal. */
  readonly say: Say;
  /** What the user must notice: a dead run was found. */
  readonly warn: Say;
}

/**
 * Makes way for a new run at `file`: nothing to do without a record; refuses (throws) while
 * the recorded supervisor runs; otherwise lets the dead run's watchdog finish, stops whatever
 * is still left itself, says what it stopped, and removes the record.
 */
export async function clearDeadRun(file: string, options: ClearOptions): Promise<void> {
  const { say, warn } = options;
  const found = readRecord(file);
  if (found.kind === "none") return;
  if (found.kind === "unreadable") {
    const aside = setAsideRecord(file);
    warn(`could not read ${file} (${found.reason}); moved it to ${aside}. Processes it lists are not stopped.`);
    return;
  }
  const record = found.record;
  const sameBoot = record.bootId === bootId();
  if (sameBoot && isRunning(record.supervisor)) {
    throw new Error(
      `npm start is already running (pid ${record.supervisor.pid}, recorded in ${file}). ` +
        `Stop it first (Ctrl-C in its terminal, or kill ${record.supervisor.pid}).`,
    );
  }
  const watchdog = sameBoot ? record.watchdog : null;
  if (watchdog !== null && isRunning(watchdog)) {
    warn(`npm start (pid ${record.supervisor.pid}) died; its watchdog (pid ${watchdog.pid}) is stopping what it started. Waiting for it ...`);
    if (!(await pollUntil(() => !isRunning(watchdog), WATCHDOG_GRACE_MS))) {
      say(`the watchdog is still busy after ${WATCHDOG_GRACE_MS / 1000} s; stopping it and taking over`);
      signalGroupOf(watchdog, "SIGKILL");
      await pollUntil(() => !isRunning(watchdog), KILL_TIMEOUT_MS);
    }
  }
  // The watchdog removes the record once it is done; a record still there is ours to finish.
  const after = readRecord(file);
  if (after.kind !== "record" || after.record.runId !== record.runId) {
    say("the watchdog stopped everything");
    return;
  }
  const left = survivors(record);
  if (left.length === 0) {
    warn(`npm start (pid ${record.supervisor.pid}) died; none of its processes is running any more. Removing its temp dir ${record.tempDir}`);
  } else {
    warn(
      `npm start (pid ${record.supervisor.pid}) died without stopping what it started; stopping ` +
        left.map((p) => `${p.name} (pid ${p.pid})`).join(", "),
    );
  }
  await stopLeftovers(record, say);
  removeRecord(file, record.runId);
  if (left.length > 0) say(`stopped what npm start (pid ${record.supervisor.pid}) left and removed its temp dir ${record.tempDir}`);
}
