/**
 * What decides whether and how the k6 scripts run: finding k6 ($K6, PATH),
 * and the summary reader with the exact-count check, on both shapes k6 writes
 * to --summary-export: the classic one (k6 1.x by default; what
 * gateway/test/k6-scripts.test.ts reads from k6 1.3.0) and the
 * machine-readable schema a later k6 may make the default.
 */

import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findK6, parseK6Summary } from "../../../loadtest/lib/k6.js";
import { k6ScriptRuns, summaryMismatches, type K6ScriptRun } from "../../../loadtest/lib/k6-scripts.js";

function briefRun(name: string): K6ScriptRun {
  const run = k6ScriptRuns("brief").find((r) => r.name === name);
  if (!run) throw new Error(`no brief run ${name}`);
  return run;
}

/** broadcast-latency at its brief size: 20 subscribers, 6 messages; `missed` deliveries lost. */
function classic(missed: number): unknown {
  return {
    root_group: {
      name: "",
      groups: {},
      checks: {
        "publish 200": { name: "publish 200", passes: 6, fails: 0 },
        "subscribed to forecasts": { name: "subscribed to forecasts", passes: 20, fails: 0 },
      },
    },
    metrics: {
      gw_messages_published: { count: 6, rate: 1, thresholds: { "count==6": false } },
      gw_messages_received: { count: 120 - missed, rate: 20 },
      gw_delivered: { passes: 120 - missed, fails: missed, value: (120 - missed) / 120, thresholds: { "rate>0.999": missed > 0 } },
      gw_fanout_latency_ms: { med: 3, "p(95)": 9, "p(99)": 20, max: 21, thresholds: { "p(95)<250": false } },
    },
  };
}

function machineReadable(missed: number): unknown {
  return {
    version: "1.0.0",
    config: { duration: 5.1, execution: "local", script: "broadcast-latency.js" },
    metadata: { generatedAt: "2026-11-30T00:00:00Z", k6Version: "2.0.0" },
    results: {
      metrics: [
        { name: "gw_messages_published", type: "counter", contains: "default", values: { count: 6 } },
        { name: "gw_messages_received", type: "counter", contains: "default", values: { count: 120 - missed } },
        { name: "gw_delivered", type: "rate", contains: "default", values: { matches: 120 - missed, rate: (120 - missed) / 120, total: 120 } },
        { name: "gw_fanout_latency_ms", type: "trend", contains: "time", values: { med: 3, "p(95)": 9, max: 21 } },
      ],
      checks: {
        results: [
          { name: "publish 200", passes: 6, fails: 0 },
          { name: "subscribed to forecasts", passes: 20, fails: 0 },
        ],
      },
    },
  };
}

describe("k6 summaries", () => {
  const run = briefRun("broadcast-latency");

  it("reads counters, rates, trends and checks from both shapes alike", () => {
    for (const raw of [classic(0), machineReadable(0)]) {
      const summary = parseK6Summary(raw);
      expect(summary.metrics.gw_messages_published?.count).toBe(6);
      expect(summary.metrics.gw_delivered).toMatchObject({ passes: 120, fails: 0 });
      expect(summary.metrics.gw_fanout_latency_ms).toMatchObject({ med: 3, "p(95)": 9, max: 21 });
      expect(summary.checks).toEqual({ "publish 200": { passes: 6, fails: 0 }, "subscribed to forecasts": { passes: 20, fails: 0 } });
    }
  });

  it("finds a loss-free run exact, and names every figure of a lossy one", () => {
    for (const shape of [classic, machineReadable]) {
      expect(summaryMismatches(run, parseK6Summary(shape(0)), true)).toEqual([]);
      const lossy = parseK6Summary(shape(2));
      // Held to its thresholds only, a full-size run with the right totals is still exact.
      expect(summaryMismatches(run, lossy, false)).toEqual([]);
      expect(summaryMismatches(run, lossy, true)).toEqual(["gw_messages_received: count 118, expected 120", "gw_delivered: 2 of 120 false"]);
    }
  });

  it("counts a missing metric as zero, so a run that measured nothing cannot match", () => {
    const empty = parseK6Summary({ metrics: {}, root_group: { checks: {} } });
    expect(summaryMismatches(run, empty, false)).toEqual(["gw_messages_published: count 0, expected 6", "gw_delivered: 0 samples, expected 120"]);
  });

  it("refuses a file of neither shape", () => {
    expect(() => parseK6Summary({ something: "else" })).toThrow(/neither the classic shape/);
    expect(() => parseK6Summary([])).toThrow(/not a JSON object/);
  });
});

describe("finding k6", () => {
  let root: string;
  let first: string;
  let second: string;
  let empty: string;

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "gw-k6-find-"));
    [first, second, empty] = ["first", "second", "empty"].map((name) => path.join(root, name)) as [string, string, string];
    for (const dir of [first, second, empty]) await mkdir(dir);
    for (const dir of [first, second]) {
      await writeFile(path.join(dir, "k6"), "#!/bin/sh\n");
      await chmod(path.join(dir, "k6"), 0o755);
    }
    // Not executable, and a directory named k6: neither is a k6.
    await writeFile(path.join(empty, "k6-plain"), "");
    await mkdir(path.join(empty, "k6"));
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("takes the first executable k6 on PATH, and none when there is none", () => {
    expect(findK6({ PATH: [empty, second, first].join(path.delimiter) })).toEqual({ path: path.join(second, "k6"), source: "PATH" });
    expect(findK6({ PATH: empty })).toBeNull();
    expect(findK6({})).toBeNull();
  });

  it("prefers $K6, as a path or a name on PATH, and refuses one that is not an executable file", () => {
    const env = { PATH: [first].join(path.delimiter) };
    expect(findK6({ ...env, K6: path.join(second, "k6") })).toEqual({ path: path.join(second, "k6"), source: "$K6" });
    expect(findK6({ ...env, K6: "k6" })).toEqual({ path: path.join(first, "k6"), source: "$K6" });
    expect(() => findK6({ ...env, K6: path.join(empty, "k6-plain") })).toThrow(/not an executable file/);
    expect(() => findK6({ ...env, K6: path.join(empty, "k6") })).toThrow(/not an executable file/);
    expect(() => findK6({ PATH: empty, K6: "k6" })).toThrow(/not an executable file on PATH/);
  });
});
