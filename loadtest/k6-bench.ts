/**
 * npm run bench:k6 [-- --only name,name] [-- --set NAME=value …] [-- --base-url URL]
 *
 * Every k6 script in loadtest/k6/ at full size (the scripts' own defaults),
 * one after the other, each judged by its thresholds (k6's exit code) and by
 * the exact counts its parameters imply. Without --base-url it starts its own
 * cluster (Redis, three gateway nodes, NGINX, no round clock) on free ports
 * and stops it again; with --base-url it drives a cluster already running
 * (e.g. `npm start`: --base-url http://127.0.0.1:8080, whose development
 * secrets are the defaults of --jwt-secret and --publish-key).
 *
 * k6 is not installed by this project: `$K6` or the first `k6` on PATH.
 */

import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { DEV_JWT_SECRET, DEV_PUBLISH_KEY } from "../scripts/lib/dev-defaults.js";
import { repoRoot } from "../scripts/lib/paths.js";
import { stopAll } from "../scripts/lib/process.js";
import { failedThresholds, findK6, k6Version, K6_MIN_MAJOR, runK6, type K6Result, type K6SummaryMetric } from "./lib/k6.js";
import { K6_PARAMETERS, k6ScriptRuns, summaryMismatches, type K6ScriptRun } from "./lib/k6-scripts.js";
import { startLocalCluster, type LocalCluster } from "./lib/local-cluster.js";

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    set: { type: "string", multiple: true },
    "base-url": { type: "string" },
    "jwt-secret": { type: "string" },
    "publish-key": { type: "string" },
    out: { type: "string" },
  },
  strict: true,
});

const BENCH_JWT_SECRET = "bench-k6-secret-0123456789abcdef";
const BENCH_PUBLISH_KEY = "bench-k6-publish-key-0123456789";

function log(line: string): void {
  process.stderr.write(`[bench:k6] ${line}\n`);
}

function parseSets(sets: readonly string[]): Record<string, string> {
  const overrides: Record<string, string> = {};
  for (const item of sets) {
    const match = /^([A-Z_]+)=(.+)$/.exec(item);
    if (!match?.[1] || !match[2]) throw new Error(`--set takes NAME=value (names: ${K6_PARAMETERS.join(", ")}), got "${item}"`);
    overrides[match[1]] = match[2];
  }
  return overrides;
}

interface Row {
  readonly run: K6ScriptRun;
  readonly result: K6Result;
  readonly problems: readonly string[];
}

const fmt = (x: number | undefined, digits = 1): string => (x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(digits));

function rateCell(metric: K6SummaryMetric | undefined): string {
  const passes = metric?.passes ?? 0;
  const total = passes + (metric?.fails ?? 0);
  return total === 0 ? "–" : `${fmt((passes / total) * 100, 3)} % (${passes}/${total})`;
}

function renderTable(rows: readonly Row[]): string {
  const lines = [
    "| script | parameters | verdict | success | trend | med ms | p95 ms | p99 ms | max ms | seconds |",
    "|---|---|---|---:|---|---:|---:|---:|---:|---:|",
  ];
  for (const { run, result, problems } of rows) {
    const metrics = result.summary?.metrics ?? {};
    // k6 reports an empty trend as zeros; with nothing delivered there is no latency to show.
    const trend = (metrics[run.headline.rate]?.passes ?? 0) > 0 ? metrics[run.headline.trend] : undefined;
    const verdict = result.exitCode === 0 && problems.length === 0 ? "pass" : `**fail** (k6 exit ${String(result.exitCode)})`;
    const params = Object.entries(run.params).map(([k, v]) => `${k}=${v}`).join(" ");
    lines.push(
      `| ${run.name} | ${params} | ${verdict} | ${rateCell(metrics[run.headline.rate])} | ${run.headline.trend} | ${fmt(trend?.med)} | ${fmt(trend?.["p(95)"])} | ${fmt(trend?.["p(99)"])} | ${fmt(trend?.max)} | ${fmt(result.seconds, 0)} |`,
    );
  }
  return lines.join("\n");
}

function renderNotes(rows: readonly Row[]): string {
  const notes: string[] = [];
  for (const { run, result, problems } of rows) {
    const failed = result.summary ? failedThresholds(result.summary) : [];
    if (result.summary === null) notes.push(`- ${run.name}: k6 wrote no summary${result.timedOut ? " (stopped after its time limit)" : ""}`);
    if (failed.length > 0) notes.push(`- ${run.name}: thresholds failed: ${failed.join("; ")}`);
    if (problems.length > 0) notes.push(`- ${run.name}: counts off: ${problems.join("; ")}`);
  }
  return notes.length > 0 ? notes.join("\n") : "- every threshold held and every count was exact";
}

async function main(): Promise<void> {
  const k6 = findK6();
  if (!k6) throw new Error("no k6: put one on PATH or set K6=/path/to/k6 (install: https://grafana.com/docs/k6/latest/set-up/install-k6/)");
  const version = await k6Version(k6);
  if (version.major < K6_MIN_MAJOR) throw new Error(`${k6.path} is k6 ${version.text}; the scripts need k6 ≥ ${K6_MIN_MAJOR}.0`);

  let runs = k6ScriptRuns("full", parseSets(values.set ?? []));
  if (values.only) {
    const only = values.only.split(",").map((s) => s.trim());
    const unknown = only.filter((name) => !runs.some((run) => run.name === name));
    if (unknown.length > 0) throw new Error(`--only: unknown script(s) ${unknown.join(", ")} (known: ${runs.map((r) => r.name).join(", ")})`);
    runs = runs.filter((run) => only.includes(run.name));
  }

  const external = values["base-url"];
  let cluster: LocalCluster | null = null;
  if (external === undefined) {
    log("starting Redis, three gateway nodes and NGINX ...");
    cluster = await startLocalCluster({ jwtSecret: BENCH_JWT_SECRET, publishKey: BENCH_PUBLISH_KEY, label: "k6b", addressLimits: "off" });
  }
  const target = cluster
    ? { baseUrl: cluster.baseUrl, jwtSecret: BENCH_JWT_SECRET, publishKey: BENCH_PUBLISH_KEY }
    : { baseUrl: external ?? "", jwtSecret: values["jwt-secret"] ?? DEV_JWT_SECRET, publishKey: values["publish-key"] ?? DEV_PUBLISH_KEY };

  const load = os.loadavg();
  const rows: Row[] = [];
  try {
    for (const run of runs) {
      log(`${run.name}: ${Object.entries(run.params).map(([k, v]) => `${k}=${v}`).join(" ")} against ${target.baseUrl}`);
      const result = await runK6({
        k6,
        script: run.script,
        env: { BASE_URL: target.baseUrl, JWT_SECRET: target.jwtSecret, PUBLISH_KEY: target.publishKey, RUN_ID: `k6b-${run.name}-${randomBytes(3).toString("hex")}`, ...run.params },
        timeoutMs: run.timeoutMs,
      });
      const problems = result.summary ? summaryMismatches(run, result.summary, false) : ["no summary"];
      rows.push({ run, result, problems });
      log(`${run.name}: k6 exit ${String(result.exitCode)} after ${result.seconds.toFixed(0)} s${problems.length > 0 ? `; ${problems.join("; ")}` : ""}`);
      if (result.exitCode !== 0 || problems.length > 0) process.exitCode = 1;
    }
  } finally {
    await cluster?.stop();
  }

  const report = [
    "# npm run bench:k6",
    "",
    `${new Date().toISOString()} · ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"} · ${Math.round(os.totalmem() / 2 ** 30)} GiB · load average at start ${load.map((l) => l.toFixed(2)).join(" ")}`,
    `k6 ${version.text} (${k6.path}) against ${external ? external : "its own cluster: Redis, three gateway nodes, NGINX, all on this machine with k6"}.`,
    "Success: the script's delivery rate (connection rate for connection-ramp), one sample per owed delivery. Latency: receive time − the frame's `ts` (welcome time for connection-ramp).",
    "",
    renderTable(rows),
    "",
    "## Notes",
    "",
    renderNotes(rows),
    "",
  ].join("\n");
  const out = values.out ?? path.join(repoRoot(), "loadtest", "results", "k6.md");
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, report);
  process.stdout.write(`${report}\nwritten to ${path.relative(process.cwd(), out)}\n`);
}

// Ctrl-C or SIGTERM: stop k6 and the cluster before going, never leave them holding ports.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping k6 and the cluster`);
    void stopAll("SIGTERM", 3000).finally(() => process.exit(130));
  });
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench:k6 failed: ${err instanceof Error ? err.message : String(err)}\n`);
  await stopAll("SIGTERM", 3000);
  process.exitCode = 1;
});
