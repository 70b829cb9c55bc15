/**
 * Finding and running a k6 binary. k6 is neither on npm nor in Debian's
 * archive, so it is never installed here: `$K6` names one, or the first `k6`
 * on PATH is used, and callers skip (tests) or stop (the benchmark) when
 * there is none.
 */

import { execFile } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { startProcess } from "../../scripts/lib/process.js";

const execFileAsync = promisify(execFile);

/** The oldest k6 the scripts are written for (see loadtest/README.md). */
export const K6_MIN_MAJOR = 1;

export interface K6Binary {
  readonly path: string;
  /** Where it came from, for messages: "$K6" or "PATH". */
  readonly source: "$K6" | "PATH";
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    // Missing or not executable: either way not a k6 we can run.
    return false;
  }
}

function onPath(name: string, env: NodeJS.ProcessEnv): string | null {
  for (const dir of (env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

/**
 * `$K6` when set: a path, or a bare name looked up on PATH (it must then name
 * an executable file: a wrong setting is an error, not a reason to skip).
 * Otherwise the first executable `k6` on PATH, else null.
 */
export function findK6(env: NodeJS.ProcessEnv = process.env): K6Binary | null {
  const named = env.K6;
  if (named !== undefined && named !== "") {
    const resolved = named.includes(path.sep) ? path.resolve(named) : onPath(named, env);
    if (resolved === null || !isExecutable(resolved)) throw new Error(`K6=${named}: not an executable file${resolved === null ? " on PATH" : ""}`);
    return { path: resolved, source: "$K6" };
  }
  const found = onPath("k6", env);
  return found === null ? null : { path: found, source: "PATH" };
}

export interface K6Version {
  readonly text: string;
  readonly major: number;
  readonly minor: number;
}

/** `k6 version` → "v1.3.0" and its numbers; throws when the output has no version. */
export async function k6Version(k6: K6Binary): Promise<K6Version> {
  const { stdout } = await execFileAsync(k6.path, ["version"], { timeout: 10_000 });
  const match = /\bv(\d+)\.(\d+)\.(\d+)\S*/.exec(stdout);
  if (!match) throw new Error(`${k6.path} version printed no version: ${stdout.trim()}`);
  return { text: match[0], major: Number(match[1]), minor: Number(match[2]) };
}

/**
 * The end-of-test figures read here, from `--summary-export`. k6 writes that
 * file in its classic shape, or in the machine-readable schema (k6 ≥ 1.5 with
 * --new-machine-readable-summary, meant to become the default in a later
 * major); readSummary accepts both.
 */
export interface K6Summary {
  /** By metric name: counters have `count`, rates `passes`/`fails`, trends the K6_TREND_STATS. */
  readonly metrics: Readonly<Record<string, K6SummaryMetric>>;
  /** By check name, over all groups. */
  readonly checks: Readonly<Record<string, K6CheckResult>>;
}

/** Trend figures asked of k6 (thresholds on other percentiles work regardless). */
export const K6_TREND_STATS = ["med", "p(95)", "p(99)", "max"] as const;

export interface K6SummaryMetric {
  readonly count?: number;
  readonly passes?: number;
  readonly fails?: number;
  readonly med?: number;
  readonly "p(95)"?: number;
  readonly "p(99)"?: number;
  readonly max?: number;
  /** Classic shape only: expression → true when the threshold FAILED. */
  readonly thresholds?: Readonly<Record<string, boolean>>;
}

export interface K6CheckResult {
  readonly passes: number;
  readonly fails: number;
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);
const numberAt = (object: Json, key: string): number | undefined => (typeof object[key] === "number" ? object[key] : undefined);

/** The figures of one metric, from either shape's value object. */
function metricFigures(values: Json, rate: boolean): K6SummaryMetric {
  const figures: Record<string, unknown> = {};
  for (const key of ["count", "passes", "fails", ...K6_TREND_STATS]) {
    const value = numberAt(values, key);
    if (value !== undefined) figures[key] = value;
  }
  // Machine-readable rates: `matches` true samples out of `total`.
  const matches = numberAt(values, "matches");
  const total = numberAt(values, "total");
  if (rate && matches !== undefined && total !== undefined) {
    figures.passes = matches;
    figures.fails = total - matches;
  }
  if (isObject(values.thresholds)) {
    figures.thresholds = Object.fromEntries(Object.entries(values.thresholds).filter((entry): entry is [string, boolean] => typeof entry[1] === "boolean"));
  }
  return figures;
}

function checkResult(value: unknown): K6CheckResult | null {
  if (!isObject(value)) return null;
  const passes = numberAt(value, "passes");
  const fails = numberAt(value, "fails");
  return passes === undefined || fails === undefined ? null : { passes, fails };
}

/** Classic groups nest: { checks: { name: {passes, fails} } (or a list of {name, …}), groups: { name: group } }. */
function collectGroupChecks(group: unknown, into: Record<string, K6CheckResult>): void {
  if (!isObject(group)) return;
  const entries = Array.isArray(group.checks)
    ? group.checks.map((check): [unknown, unknown] => [isObject(check) ? check.name : undefined, check])
    : isObject(group.checks)
      ? Object.entries(group.checks)
      : [];
  for (const [name, value] of entries) {
    const result = checkResult(value);
    if (result && typeof name === "string") into[name] = result;
  }
  const groups = group.groups;
  if (isObject(groups)) for (const child of Object.values(groups)) collectGroupChecks(child, into);
  if (Array.isArray(groups)) for (const child of groups) collectGroupChecks(child, into);
}

/** Either shape of a `--summary-export` file → K6Summary; throws on anything else. */
export function parseK6Summary(raw: unknown): K6Summary {
  if (!isObject(raw)) throw new Error("k6 summary: not a JSON object");
  const metrics: Record<string, K6SummaryMetric> = {};
  const checks: Record<string, K6CheckResult> = {};
  const results = raw.results;
  if (isObject(results) && Array.isArray(results.metrics)) {
    for (const metric of results.metrics) {
      if (!isObject(metric) || typeof metric.name !== "string" || !isObject(metric.values)) continue;
      metrics[metric.name] = metricFigures(metric.values, metric.type === "rate");
    }
    const checkList = isObject(results.checks) ? results.checks.results : undefined;
    if (Array.isArray(checkList)) {
      for (const check of checkList) {
        const result = checkResult(check);
        if (result && isObject(check) && typeof check.name === "string") checks[check.name] = result;
      }
    }
    return { metrics, checks };
  }
  if (isObject(raw.metrics)) {
    for (const [name, values] of Object.entries(raw.metrics)) if (isObject(values)) metrics[name] = metricFigures(values, false);
    collectGroupChecks(raw.root_group, checks);
    return { metrics, checks };
  }
  throw new Error("k6 summary: neither the classic shape (metrics) nor the machine-readable one (results.metrics)");
}

export interface K6RunOptions {
  readonly k6: K6Binary;
  /** Path of the script. */
  readonly script: string;
  /** Passed as `-e NAME=value`. */
  readonly env: Readonly<Record<string, string>>;
  /** k6 is stopped (SIGINT, then SIGKILL) past this. */
  readonly timeoutMs: number;
}

export interface K6Result {
  /** 0: every threshold passed; 99: a threshold failed; 107: script error; null: killed. */
  readonly exitCode: number | null;
  readonly timedOut: boolean;
  /** Combined stdout and stderr (the end-of-test summary and any script errors), last ~200 KB. */
  readonly output: string;
  /** null when k6 wrote none (it died before the end of the test). */
  readonly summary: K6Summary | null;
  readonly seconds: number;
}

/** Runs one script to completion with `--summary-export`, and never leaves k6 running. */
export async function runK6(options: K6RunOptions): Promise<K6Result> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "gw-k6-"));
  const summaryFile = path.join(dir, "summary.json");
  const args = ["run", "--no-usage-report", "--quiet", "--summary-export", summaryFile, "--summary-trend-stats", K6_TREND_STATS.join(",")];
  for (const [name, value] of Object.entries(options.env)) args.push("-e", `${name}=${value}`);
  args.push(options.script);
  const started = Date.now();
  try {
    // No readiness to wait for: startProcess resolves on spawn, and its registry
    // kills k6 with us should this process die first.
    const proc = await startProcess({ name: `k6 ${path.basename(options.script)}`, command: options.k6.path, args, timeoutMs: 10_000 });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      proc.exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), options.timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    // SIGINT is k6's own "stop the test" signal; it still writes the summary.
    const exitCode = timedOut ? await proc.stop("SIGINT", 10_000) : (await proc.exited).code;
    return { exitCode, timedOut, output: proc.output(), summary: await readSummary(summaryFile), seconds: (Date.now() - started) / 1000 };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function readSummary(file: string): Promise<K6Summary | null> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  return parseK6Summary(JSON.parse(text));
}

/** The thresholds that failed, as "metric: expression" (the classic shape only; k6's exit code says it for both). */
export function failedThresholds(summary: K6Summary): string[] {
  const failed: string[] = [];
  for (const [metric, values] of Object.entries(summary.metrics)) {
    for (const [expression, crossed] of Object.entries(values.thresholds ?? {})) if (crossed) failed.push(`${metric}: ${expression}`);
  }
  return failed;
}
