/**
 * The k6 scripts in loadtest/k6/, run briefly by a real k6 against three real
 * nodes behind real NGINX, each held to its own thresholds (k6's exit code)
 * and to the exact figures its summary must show. Runs when `$K6` names a k6
 * or one is on PATH; otherwise every test here is skipped, and says so.
 */

import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findK6, k6Version, K6_MIN_MAJOR, runK6, type K6Binary, type K6Result } from "../../loadtest/lib/k6.js";
import { k6ScriptRuns, summaryMismatches, type K6ScriptRun } from "../../loadtest/lib/k6-scripts.js";
import { startLocalCluster, type LocalCluster } from "../../loadtest/lib/local-cluster.js";
import { TEST_JWT_SECRET, TEST_PUBLISH_KEY } from "./support/gateway-node.js";

const k6: K6Binary | null = findK6();
const SKIP_REASON = "skipped: no k6 on PATH and K6 is unset (install k6 ≥ 1.0, or set K6=/path/to/k6)";
if (!k6) process.stderr.write(`[k6-scripts] ${SKIP_REASON}\n`);

let cluster: LocalCluster;

/** Everything a failed assertion should show: how k6 ended and the tail of what it printed. */
function describeRun(result: K6Result): string {
  return `k6 exit ${String(result.exitCode)}${result.timedOut ? " (timed out)" : ""} after ${result.seconds.toFixed(1)} s\n${result.output.slice(-6000)}`;
}

function runBrief(run: K6ScriptRun, overrides: Record<string, string> = {}): Promise<K6Result> {
  if (!k6) throw new Error("unreachable: the suite is skipped without k6");
  return runK6({
    k6,
    script: run.script,
    env: {
      BASE_URL: cluster.baseUrl,
      JWT_SECRET: TEST_JWT_SECRET,
      PUBLISH_KEY: TEST_PUBLISH_KEY,
      RUN_ID: `k6t-${run.name}-${randomBytes(3).toString("hex")}`,
      ...run.params,
      ...overrides,
    },
    timeoutMs: run.timeoutMs,
  });
}

describe.skipIf(!k6)(`k6 scripts through NGINX and three nodes (${k6 ? `${k6.source}: ${k6.path}` : SKIP_REASON})`, () => {
  beforeAll(async () => {
    if (!k6) return;
    const version = await k6Version(k6);
    process.stderr.write(`[k6-scripts] ${k6.path} ${version.text}\n`);
    if (version.major < K6_MIN_MAJOR) throw new Error(`${k6.path} is k6 ${version.text}; the scripts need k6 ≥ ${K6_MIN_MAJOR}.0`);
    cluster = await startLocalCluster({ jwtSecret: TEST_JWT_SECRET, publishKey: TEST_PUBLISH_KEY, label: "k6t" });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  for (const run of k6ScriptRuns("brief")) {
    it(`${run.name}: every threshold holds and the summary shows exactly the expected counts`, async () => {
      const result = await runBrief(run);
      expect(result.exitCode, describeRun(result)).toBe(0);
      expect(result.summary, describeRun(result)).not.toBeNull();
      expect(summaryMismatches(run, result.summary!, true), describeRun(result)).toEqual([]);
    }, run.timeoutMs + 15_000);
  }

  // The harness must see a failing run as one: with a secret the nodes do not
  // accept, no socket connects, so every owed delivery is scored as missed and
  // k6 exits 99 (thresholds failed) with the full number of samples.
  it("a run whose sockets are all refused fails its thresholds, with every owed delivery scored as missed", async () => {
    const run = k6ScriptRuns("brief").find((r) => r.name === "broadcast-latency");
    if (!run) throw new Error("broadcast-latency missing from the brief runs");
    const result = await runBrief(run, { JWT_SECRET: "not-the-cluster-secret-0123456789" });
    expect(result.exitCode, describeRun(result)).toBe(99);
    const summary = result.summary;
    expect(summary, describeRun(result)).not.toBeNull();
    expect(summaryMismatches(run, summary!, false), describeRun(result)).toEqual([]);
    expect(summary!.metrics.gw_delivered).toMatchObject({ passes: 0, fails: run.expect.samples.gw_delivered });
  }, 60_000);
});
