/**
 * The living side of the start record (start-record.ts). npm start claims the record before
 * it starts anything, writes every child into it the moment the child is spawned, and runs a
 * watchdog (scripts/start-watchdog.ts) that stops them all if npm start dies without doing
 * so. Once npm start has stopped everything itself, finish() removes the temp dir and the
 * record, and the watchdog, finding no record, exits quietly.
 */

import { spawn } from "node:child_process";
import type { Writable } from "node:stream";
import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { repoRoot } from "./paths.js";
import { onProcessSpawned } from "./process.js";
import { bootId, identify, type ProcessIdentity } from "./process-identity.js";
import { claimRecord, newRecord, removeRecord, saveRecord, type RecordedStage, type StartRecord } from "./start-record.js";

export interface SupervisedRun {
  /**
   * Removed with the run, after a crash too. Readable by everyone (nginx workers and the
   * postgres user need to reach their directories in it).
   */
  readonly tempDir: string;
  /** Children spawned from now on belong to stage `name`; after a crash, later stages are stopped first. */
  stage(name: string): void;
  /** Call once everything is stopped: removes the temp dir and the record. Idempotent. */
  finish(): Promise<void>;
}

/** Where the watchdog's compiled entry point lives (npm start runs from dist/ too). */
function watchdogScript(): string {
  return path.join(repoRoot(), "dist", "scripts", "start-watchdog.js");
}

/**
 * Starts the watchdog with a pipe on its stdin whose writing end only this process holds
 * (libuv opens it close-on-exec, so no later child inherits it): end-of-file on that pipe
 * tells the watchdog that this process is gone, however it went. Detached, so that the
 * terminal's Ctrl-C or hang-up reaches only npm start, which stops things in order.
 */
async function startWatchdog(
  recordFile: string,
  runId: string,
  onExit: (how: string) => void,
): Promise<{ id: ProcessIdentity; pipe: Writable }> {
  const child = spawn(process.execPath, [watchdogScript(), recordFile, runId], {
    stdio: ["pipe", "inherit", "inherit"],
    detached: true,
  });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  const id = child.pid === undefined ? null : identify(child.pid);
  if (id === null || child.stdin === null) throw new Error("the npm start watchdog exited at once; see its output above");
  let reported = false;
  const report = (how: string): void => {
    if (!reported) onExit(how);
    reported = true;
  };
  child.once("exit", (code, signal) => report(signal === null ? `code ${String(code)}` : `signal ${signal}`));
  // An error on the pipe only means the watchdog is gone.
  child.stdin.on("error", (err) => report(`its pipe failed: ${err.message}`));
  // Nothing is ever written to the pipe, and the child is not waited for: only its life matters.
  child.unref();
  return { id, pipe: child.stdin };
}

async function makeTempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "gw-start-"));
  await chmod(dir, 0o755);
  return dir;
}

/**
 * Claims `recordFile` for this process (which clearDeadRun() must have cleared) and starts
 * recording. Throws when another npm start claimed it first. Without /proc (not Linux)
 * processes cannot be identified safely: nothing is recorded and `warn` says so.
 */
export async function beginRun(recordFile: string, warn: (message: string) => void): Promise<SupervisedRun> {
  const tempDir = await makeTempDir();
  const self = identify(process.pid);
  const boot = bootId();
  if (self === null || boot === null) {
    warn("no /proc here: processes are not recorded, and a crashed npm start leaves them for you to stop");
    return { tempDir, stage: () => undefined, finish: () => rm(tempDir, { recursive: true, force: true }) };
  }

  const record: StartRecord = newRecord(self, boot, tempDir);
  await mkdir(path.dirname(recordFile), { recursive: true });
  try {
    claimRecord(recordFile, record);
  } catch (err) {
    await rm(tempDir, { recursive: true, force: true });
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new Error(`another npm start claimed ${recordFile} a moment ago`, { cause: err });
    }
    throw err;
  }

  let stage: RecordedStage | null = null;
  const beginStage = (name: string): RecordedStage => {
    const next = { name, processes: [] };
    record.stages.push(next);
    return next;
  };
  const unsubscribe = onProcessSpawned((proc) => {
    const id = identify(proc.pid);
    // Already gone: there is nothing to stop later.
    if (id === null) return;
    stage ??= beginStage("start");
    stage.processes.push({ ...id, name: proc.name, stopSignal: proc.stopSignal, command: proc.child.spawnargs.join(" ") });
    saveRecord(recordFile, record);
  });

  let finished = false;
  let watchdogPipe: Writable | null = null;
  const run: SupervisedRun = {
    tempDir,
    stage: (name) => {
      stage = beginStage(name);
      saveRecord(recordFile, record);
    },
    finish: async () => {
      if (finished) return;
      finished = true;
      unsubscribe();
      await rm(tempDir, { recursive: true, force: true });
      removeRecord(recordFile, record.runId);
      // With the record gone, end-of-file tells the watchdog to exit without doing anything.
      watchdogPipe?.end();
    },
  };

  try {
    const watchdog = await startWatchdog(recordFile, record.runId, (how) => {
      if (!finished) warn(`the npm start watchdog exited (${how}); if npm start dies now, the next npm start stops what it left`);
    });
    watchdogPipe = watchdog.pipe;
    record.watchdog = watchdog.id;
    saveRecord(recordFile, record);
  } catch (err) {
    await run.finish();
    throw err;
  }
  return run;
}
