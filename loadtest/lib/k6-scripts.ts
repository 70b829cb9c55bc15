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
  /** The figures a report leads with: the script's success rate and its latency trend. */
  readonly headline: { readonly rate: string; readonly trend: string };
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
        checks: { "publish 200": published, "subscribed to forecasts": subscribers },
      },
    },
    headline: { rate: metric("delivered"), trend: metric("latency_ms") },
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
    headline: { rate: "gw_connected", trend: "gw_welcome_ms" },
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
    headline: { rate: "gw_personal_delivered", trend: "gw_personal_latency_ms" },
  };
}

const raw = (what: string): string => ({ delivered: "gw_delivered", latency_ms: "gw_fanout_latency_ms" })[what] ?? `gw_messages_${what}`;
const sio = (what: string): string => `gw_sio_${what}`;

/** Each script's parameters at each size; `full` is what the scripts default to. */
const SIZES: Record<K6Size, Readonly<Record<string, string>>> = {
  brief: { SUBSCRIBERS: "20", DURATION: "3s", WARMUP_S: "2", TARGET: "30", RAMP: "2s", HOLD: "1s", USERS: "5", DEVICES: "3", RATE: "10" },
  full: { SUBSCRIBERS: "1000", DURATION: "60s", WARMUP_S: "20", TARGET: "1000", RAMP: "60s", HOLD: "60s", USERS: "100", DEVICES: "10", RATE: "20" },
};

/** The parameter names `overrides` may set; a name applies to every script that has it (RATE: multi-device.js only; the broadcasts publish twice a second). */
export const K6_PARAMETERS: readonly string[] = Object.keys(SIZES.full);

/** Every script once, in the order they run; `overrides` replace parameters of the size. */
export function k6ScriptRuns(size: K6Size, overrides: Readonly<Record<string, string>> = {}): K6ScriptRun[] {
  for (const name of Object.keys(overrides)) if (!K6_PARAMETERS.includes(name)) throw new Error(`unknown k6 parameter ${name} (known: ${K6_PARAMETERS.join(", ")})`);
  const params = { ...SIZES[size], ...overrides };
  const text = (name: string): string => {
    const value = params[name];
    if (value === undefined) throw new Error(`k6 parameter ${name} missing`);
    return value;
  };
  const count = (name: string): number => {
    const value = Number(text(name));
    if (!Number.isInteger(value) || value < 1) throw new Error(`k6 parameter ${name} must be a positive whole number, got "${text(name)}"`);
    return value;
  };
  return [
    broadcast("broadcast-latency", "broadcast-latency.js", raw, count("SUBSCRIBERS"), text("DURATION"), count("WARMUP_S")),
    connectionRamp(count("TARGET"), text("RAMP"), text("HOLD")),
    multiDevice(count("USERS"), count("DEVICES"), count("RATE"), text("DURATION"), count("WARMUP_S")),
    broadcast("socketio-broadcast", "socketio-broadcast.js", sio, count("SUBSCRIBERS"), text("DURATION"), count("WARMUP_S")),
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
      const check = summary.checks[name];
      if (check?.passes !== expected || check.fails !== 0) problems.push(`check "${name}": ${check?.passes ?? 0} passed, ${check?.fails ?? 0} failed, expected ${expected} passed`);
    }
  }
  return problems;
}
