/**
 * The k6 scripts in loadtest/k6/, each at two sizes: `brief` (a few seconds,
 * a few dozen sockets: the test suite) and `full` (the scripts' documented
 * defaults: npm run bench:k6). For each run, the exact numbers its end-of-test
 * summary must show, so that a run which measured nothing cannot pass.
 */

import path from "node:path";
import { repoRoot } from "../../scripts/lib/paths.js";
import type { K6Summary } from "./k6.js";

export type K6Size = "brief" | "full";

export interface K6ScriptRun {
  readonly name: string;
  /** Absolute path of the script. */
  readonly script: string;
  /** The script's own parameters (`-e`), on top of BASE_URL, JWT_SECRET, PUBLISH_KEY and RUN_ID. */
  readonly params: Readonly<Record<string, string>>;
  /** Upper bound on one run (k6 is stopped past it). */
  readonly timeoutMs: number;
  readonly expect: K6Expectation;
}

/** Exact figures, from the run's parameters. */
export interface K6Expectation {
  /** Counters that must equal this in any run (what the script itself controls: publishes). */
  readonly counts: Readonly<Record<string, number>>;
  /** Rate metrics that must hold exactly this many samples (passes + fails): every owed delivery scored once. */
  readonly samples: Readonly<Record<string, number>>;
  /** What a run without a single loss shows on top: counters, and checks by name with their passes. */
  readonly lossless: {
    readonly counts: Readonly<Record<string, number>>;
    readonly checks: Readonly<Record<string, number>>;
  };
}

const seconds = (text: string): number => {
  const match = /^(\d+)s$/.exec(text);
  if (!match) throw new Error(`durations here are whole seconds ("3s"), got "${text}"`);
  return Number(match[1]);
};

const scriptPath = (file: string): string => path.join(repoRoot(), "loadtest", "k6", file);

/** broadcast-latency.js and socketio-broadcast.js: 2 messages a second, every subscriber owed every one. */
function broadcast(name: string, file: string, metric: (what: string) => string, subscribers: number, duration: string, warmupS: number): K6ScriptRun {
  const published = 2 * seconds(duration);
  const owed = subscribers * published;
  return {
    name,
    script: scriptPath(file),
    params: { SUBSCRIBERS: String(subscribers), DURATION: duration, WARMUP_S: String(warmupS) },
    timeoutMs: (warmupS + seconds(duration) + 60) * 1000,
    expect: {
      counts: { [metric("published")]: published },
      samples: { [metric("delivered")]: owed },
      lossless: {
        counts: { [metric("received")]: owed },
        checks: { "publish 200": published, "subscribed to race": subscribers },
      },
    },
  };
}

function connectionRamp(target: number, ramp: string, hold: string): K6ScriptRun {
  return {
    name: "connection-ramp",
    script: scriptPath("connection-ramp.js"),
    params: { TARGET: String(target), RAMP: ramp, HOLD: hold },
    timeoutMs: (seconds(ramp) + seconds(hold) + 60) * 1000,
    expect: {
      counts: {},
      samples: { gw_connected: target },
      lossless: { counts: { gw_unexpected_closes: 0 }, checks: { "subscribed to race": target } },
    },
  };
}

function multiDevice(users: number, devices: number, rate: number, duration: string, warmupS: number): K6ScriptRun {
  const published = rate * seconds(duration);
  // Message i goes to one user, and each of that user's devices is owed it.
  const owed = published * devices;
  return {
    name: "multi-device",
    script: scriptPath("multi-device.js"),
    params: { USERS: String(users), DEVICES: String(devices), RATE: String(rate), DURATION: duration, WARMUP_S: String(warmupS) },
    timeoutMs: (warmupS + seconds(duration) + 60) * 1000,
    expect: {
      counts: { gw_personal_published: published },
      samples: { gw_personal_delivered: owed },
      lossless: { counts: { gw_personal_received: owed }, checks: { "publish 200": published } },
    },
  };
}

const raw = (what: string): string => (what === "delivered" ? "gw_delivered" : `gw_messages_${what}`);
const sio = (what: string): string => `gw_sio_${what}`;

/** Every script once, in the order they run. */
export function k6ScriptRuns(size: K6Size): K6ScriptRun[] {
  if (size === "brief") {
    return [
      broadcast("broadcast-latency", "broadcast-latency.js", raw, 20, "3s", 2),
      connectionRamp(30, "2s", "1s"),
      multiDevice(5, 3, 10, "2s", 2),
      broadcast("socketio-broadcast", "socketio-broadcast.js", sio, 20, "3s", 2),
    ];
  }
  return [
    broadcast("broadcast-latency", "broadcast-latency.js", raw, 1000, "60s", 20),
    connectionRamp(1000, "60s", "60s"),
    multiDevice(100, 10, 20, "60s", 20),
    broadcast("socketio-broadcast", "socketio-broadcast.js", sio, 1000, "60s", 20),
  ];
}

/**
 * Where a summary departs from the run's exact figures; empty when it matches.
 * `lossless` adds the figures of a run without a single missed delivery or
 * failed check (the test suite's brief runs); a full run is held to its
 * thresholds instead, and to the exact counts and sample totals.
 */
export function summaryMismatches(run: K6ScriptRun, summary: K6Summary, lossless: boolean): string[] {
  const problems: string[] = [];
  const metric = (name: string): K6Summary["metrics"][string] | undefined => summary.metrics[name];
  const counts = lossless ? { ...run.expect.counts, ...run.expect.lossless.counts } : run.expect.counts;
  for (const [name, expected] of Object.entries(counts)) {
    const actual = metric(name)?.count ?? 0;
    if (actual !== expected) problems.push(`${name}: count ${actual}, expected ${expected}`);
  }
  for (const [name, expected] of Object.entries(run.expect.samples)) {
    const passes = metric(name)?.passes ?? 0;
    const fails = metric(name)?.fails ?? 0;
    if (passes + fails !== expected) problems.push(`${name}: ${passes + fails} samples, expected ${expected}`);
    if (lossless && fails !== 0) problems.push(`${name}: ${fails} of ${passes + fails} false`);
  }
  if (lossless) {
    for (const [name, expected] of Object.entries(run.expect.lossless.checks)) {
      const check = summary.root_group.checks[name];
      if (check?.passes !== expected || check.fails !== 0) problems.push(`check "${name}": ${check?.passes ?? 0} passed, ${check?.fails ?? 0} failed, expected ${expected} passed`);
    }
  }
  return problems;
}
