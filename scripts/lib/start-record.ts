/**
 * The on-disk record of one `npm start` run (<run dir>/start.json): who supervises it, which
 * processes it started, in which stages, and its temp directory. It exists from before the
 * first child is spawned until everything is stopped again, so a record whose supervisor is
 * gone means that supervisor died (SIGKILL, OOM kill) and left its processes behind.
 *
 * The file is replaced atomically (write + rename) on every change and created exclusively
 * (link), so a reader never sees half a record and two starts never both own one.
 */

import { randomUUID } from "node:crypto";
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import type { ProcessIdentity } from "./process-identity.js";

export interface RecordedProcess extends ProcessIdentity {
  readonly name: string;
  /** The signal that stops it cleanly: SIGINT for Postgres' fast shutdown, else SIGTERM. */
  readonly stopSignal: NodeJS.Signals;
  /** As spawned, for messages (postgres and nginx rewrite what ps shows). */
  readonly command: string;
}

/** Processes started in one step; stopped together, later stages first. */
export interface RecordedStage {
  readonly name: string;
  readonly processes: RecordedProcess[];
}

export interface StartRecord {
  readonly version: 1;
  readonly runId: string;
  /** Start ticks are only comparable within one boot. */
  readonly bootId: string;
  readonly supervisor: ProcessIdentity;
  /** The process that stops everything when the supervisor dies; null until it runs. */
  watchdog: ProcessIdentity | null;
  /** The run's temp directory (Redis dir, NGINX prefix, Prometheus TSDB, Postgres socket); removed with the run. */
  readonly tempDir: string;
  readonly stages: RecordedStage[];
}

export function newRecord(supervisor: ProcessIdentity, bootId: string, tempDir: string): StartRecord {
  return { version: 1, runId: randomUUID(), bootId, supervisor, watchdog: null, tempDir, stages: [] };
}

export type ReadResult =
  | { readonly kind: "none" }
  | { readonly kind: "record"; readonly record: StartRecord }
  | { readonly kind: "unreadable"; readonly reason: string };

export function readRecord(file: string): ReadResult {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "none" };
    throw err;
  }
  try {
    return { kind: "record", record: parseRecord(JSON.parse(text) as unknown) };
  } catch (err) {
    return { kind: "unreadable", reason: err instanceof Error ? err.message : String(err) };
  }
}

/** Creates `file` holding `record`; throws with code EEXIST when a record is already there. */
export function claimRecord(file: string, record: StartRecord): void {
  const temp = writeTemp(file, record);
  try {
    linkSync(temp, file);
  } finally {
    unlinkSync(temp);
  }
}

/** Replaces `file` with `record` in one step. */
export function saveRecord(file: string, record: StartRecord): void {
  renameSync(writeTemp(file, record), file);
}

/**
 * Removes `file` if it still describes run `runId`. Only its owner, or whoever stopped that
 * run's processes, calls this; the check keeps a slow watchdog from deleting the record of a
 * newer run.
 */
export function removeRecord(file: string, runId: string): void {
  const current = readRecord(file);
  if (current.kind === "record" && current.record.runId === runId) unlinkSync(file);
}

/** Moves an unreadable record aside (kept for a look, never acted on). Returns where to. */
export function setAsideRecord(file: string): string {
  const aside = `${file}.unreadable-${Date.now()}`;
  renameSync(file, aside);
  return aside;
}

function writeTemp(file: string, record: StartRecord): string {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(record, null, 2)}\n`);
  return temp;
}

// --- parsing: the file decides which processes may be signalled, so its shape is checked ---

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function field<T>(obj: Record<string, unknown>, key: string, check: (v: unknown) => v is T, what: string): T {
  const value = obj[key];
  if (!check(value)) throw new Error(`start record: "${key}" must be ${what}`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isPid = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 1;
const isTicks = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
const isSignal = (v: unknown): v is NodeJS.Signals => typeof v === "string" && /^SIG[A-Z0-9]+$/.test(v) && v in os.constants.signals;

function parseIdentity(value: unknown): ProcessIdentity {
  if (!isObject(value)) throw new Error("start record: a process must be an object");
  return { pid: field(value, "pid", isPid, "a pid"), startTicks: field(value, "startTicks", isTicks, "clock ticks") };
}

function parseProcess(value: unknown): RecordedProcess {
  if (!isObject(value)) throw new Error("start record: a process must be an object");
  return {
    ...parseIdentity(value),
    name: field(value, "name", isString, "a string"),
    stopSignal: field(value, "stopSignal", isSignal, "a signal name"),
    command: field(value, "command", isString, "a string"),
  };
}

function parseStage(value: unknown): RecordedStage {
  if (!isObject(value) || !Array.isArray(value.processes)) throw new Error("start record: a stage needs a processes list");
  return { name: field(value, "name", isString, "a string"), processes: value.processes.map(parseProcess) };
}

export function parseRecord(value: unknown): StartRecord {
  if (!isObject(value) || value.version !== 1) throw new Error("start record: not a version 1 record");
  if (!Array.isArray(value.stages)) throw new Error('start record: "stages" must be a list');
  const tempDir = field(value, "tempDir", isString, "a path");
  // rm -rf on whatever the file says: only ever an absolute path of the kind beginRun() makes.
  if (!/^\/.+\/gw-start-[A-Za-z0-9]+$/.test(tempDir)) throw new Error(`start record: unexpected tempDir ${tempDir}`);
  return {
    version: 1,
    runId: field(value, "runId", isString, "a string"),
    bootId: field(value, "bootId", isString, "a string"),
    supervisor: parseIdentity(value.supervisor),
    watchdog: value.watchdog === null ? null : parseIdentity(value.watchdog),
    tempDir,
    stages: value.stages.map(parseStage),
  };
}
