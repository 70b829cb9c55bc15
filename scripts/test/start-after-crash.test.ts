/**
 * npm start after its supervisor was SIGKILLed, with real processes all the way: the real
 * `node dist/scripts/start.js` starting real Postgres, Redis, two gateways, NGINX, Prometheus
 * and both exporters. Every port is a free one and the run and data directories live in a
 * temp dir, so a developer's own `npm start` (8080, 9001-9003, .run/, .data/) is never touched.
 */

import { chmod, mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../../gateway/test/support/eventually.js";
import { connect } from "../../gateway/test/support/ws-client.js";
import { DEMO_SOURCE } from "../lib/demo-forecasts.js";
import { stopLeftovers } from "../lib/leftovers.js";
import { repoRoot } from "../lib/paths.js";
import { freePort, isPortFree } from "../lib/ports.js";
import { isRunning } from "../lib/process-identity.js";
import { startProcess, type ManagedProcess } from "../lib/process.js";
import { readRecord, type RecordedProcess, type StartRecord } from "../lib/start-record.js";

const STARTED = /Realtime gateway cluster is up/;

let workDir: string;
let env: Record<string, string>;
let ports: number[];
let nginxPort: number;
const recordFile = (): string => path.join(workDir, "run", "start.json");
/** Every run this file started, for the final "nothing left" checks and the safety net. */
const runs: StartRecord[] = [];
const supervisors: ManagedProcess[] = [];

beforeAll(async () => {
  workDir = await mkdtemp(path.join(os.tmpdir(), "gw-start-test-"));
  // The postgres user keeps its data dir in here and must be able to reach it.
  await chmod(workDir, 0o755);
  const [nginx, gw1, gw2, pg, redis, prometheus, redisExporter, pgExporter] = await Promise.all(Array.from({ length: 8 }, () => freePort()));
  nginxPort = nginx!;
  env = {
    NGINX_PORT: String(nginx),
    GATEWAY_PORTS: `${gw1},${gw2}`,
    PG_PORT: String(pg),
    REDIS_PORT: String(redis),
    PROMETHEUS_PORT: String(prometheus),
    REDIS_EXPORTER_PORT: String(redisExporter),
    PG_EXPORTER_PORT: String(pgExporter),
    START_RUN_DIR: path.join(workDir, "run"),
    START_DATA_DIR: path.join(workDir, "data"),
    LOG_LEVEL: "warn",
  };
  ports = [nginx!, gw1!, gw2!, pg!, redis!, prometheus!, redisExporter!, pgExporter!];
});

afterAll(async () => {
  // Safety net for a failed test: nothing of it may outlive the file.
  for (const proc of supervisors) await proc.kill9();
  for (const record of runs) {
    if (record.watchdog !== null && isRunning(record.watchdog)) process.kill(record.watchdog.pid, "SIGKILL");
    await stopLeftovers(record, () => undefined);
  }
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
}, 60_000);

/** `npm start` as scripts/start.sh runs it; resolves once a line matches `readyLine`. */
function startSupervisor(readyLine = STARTED): Promise<ManagedProcess> {
  const proc = startProcess({
    name: "npm-start",
    command: process.execPath,
    args: [path.join(repoRoot(), "dist", "scripts", "start.js")],
    cwd: repoRoot(),
    env,
    readyLine,
    timeoutMs: 45_000,
  });
  return proc.then((p) => {
    supervisors.push(p);
    return p;
  });
}

function currentRecord(): StartRecord {
  const found = readRecord(recordFile());
  if (found.kind !== "record") throw new Error(`expected a start record at ${recordFile()}, found ${found.kind}`);
  runs.push(found.record);
  return found.record;
}

const processesOf = (record: StartRecord): RecordedProcess[] => record.stages.flatMap((s) => s.processes);
const names = (record: StartRecord): string[] => processesOf(record).map((p) => p.name).sort();

async function readyzThroughNginx(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${nginxPort}/readyz`, { signal: AbortSignal.timeout(2000) });
  await res.body?.cancel();
  return res.status;
}

async function portsInUse(): Promise<number[]> {
  const free = await Promise.all(ports.map((p) => isPortFree(p)));
  return ports.filter((_, i) => !free[i]);
}

/** Nothing of `record` runs, its temp dir is gone, and so is the record file. */
async function expectNothingLeft(records: readonly StartRecord[]): Promise<void> {
  for (const record of records) {
    expect(processesOf(record).filter((p) => isRunning(p)).map((p) => p.name)).toEqual([]);
    expect(record.watchdog === null || !isRunning(record.watchdog)).toBe(true);
    expect(existsSync(record.tempDir)).toBe(false);
  }
  expect(await portsInUse()).toEqual([]);
  expect(existsSync(recordFile())).toBe(false);
}

const EVERYTHING = ["nginx", "node-1", "node-2", "postgres", "postgres-exporter", "prometheus", "redis", "redis-exporter"];

describe("npm start after its supervisor was SIGKILLed", () => {
  it("the watchdog stops everything a SIGKILLed npm start started", async () => {
    const supervisor = await startSupervisor();
    const record = currentRecord();
    expect(names(record)).toEqual(EVERYTHING);
    expect(await readyzThroughNginx()).toBe(200);

    await supervisor.kill9();

    await eventually(
      async () =>
        processesOf(record).filter((p) => isRunning(p)).length +
        (await portsInUse()).length +
        (existsSync(recordFile()) ? 1 : 0) +
        (isRunning(record.watchdog!) ? 1 : 0),
      (left) => left === 0,
      30_000,
    );
    await expectNothingLeft([record]);
    expect(supervisor.output()).toMatch(/\[start-watchdog\] npm start \(pid \d+\) is gone/);
    expect(supervisor.output()).toMatch(/\[start-watchdog\] {3}postgres \(pid \d+\): stopped \(SIGINT\)/);
  }, 60_000);

  it("when the watchdog is killed too, the next npm start stops the leftovers, says so, and comes up", async () => {
    const first = await startSupervisor();
    const dead = currentRecord();
    const watchdog = dead.watchdog;
    expect(watchdog).not.toBeNull();
    // Both, as `kill -9` of everything would; the watchdog first, or it would do its job.
    process.kill(watchdog!.pid, "SIGKILL");
    await eventually(async () => isRunning(watchdog!), (running) => !running, 5000);
    await first.kill9();

    // Nothing stops them now: they are left running, and the ports stay taken.
    expect(processesOf(dead).filter((p) => !isRunning(p)).map((p) => p.name)).toEqual([]);
    expect(await readyzThroughNginx()).toBe(200);
    expect(existsSync(recordFile())).toBe(true);

    const second = await startSupervisor();
    const out = second.output();
    expect(out).toContain(`npm start (pid ${dead.supervisor.pid}) died without stopping what it started; stopping`);
    for (const proc of processesOf(dead)) expect(out).toContain(`${proc.name} (pid ${proc.pid}): stopped`);
    expect(processesOf(dead).filter((p) => isRunning(p)).map((p) => p.name)).toEqual([]);
    expect(existsSync(dead.tempDir)).toBe(false);
    const live = currentRecord();
    expect(names(live)).toEqual(EVERYTHING);
    expect(await readyzThroughNginx()).toBe(200);

    // Its demo feed publishes made-up forecasts, labelled as such, for the live page's ticker.
    expect(out).toContain("Demo feed:        made-up forecast_update on forecasts every 2 s");
    const res = await fetch(`http://127.0.0.1:${nginxPort}/v1/dev/token?sub=ticker-watcher`);
    const { token } = (await res.json()) as { token: string };
    const watcher = await connect(`ws://127.0.0.1:${nginxPort}/ws`, { token });
    await watcher.subscribe("forecasts");
    const forecast = await watcher.waitForMessage((m) => m.channel === "forecasts" && m.event === "forecast_update", 5000);
    expect(forecast.data).toMatchObject({ asset: expect.any(String), p: expect.any(Number), demo: true, source: DEMO_SOURCE });
    await watcher.close();

    // A second npm start on the same record is refused, and touches nothing.
    const third = await startProcess({
      name: "npm-start-again",
      command: process.execPath,
      args: [path.join(repoRoot(), "dist", "scripts", "start.js")],
      cwd: repoRoot(),
      env,
    });
    const refused = await third.exited;
    expect(refused.code).toBe(1);
    expect(third.output()).toContain(`npm start is already running (pid ${second.pid}`);
    expect(processesOf(live).filter((p) => !isRunning(p)).map((p) => p.name)).toEqual([]);
    expect(await readyzThroughNginx()).toBe(200);

    // The terminal closes: SIGHUP stops everything in order and leaves nothing behind.
    process.kill(second.pid, "SIGHUP");
    const exit = await Promise.race([second.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 30_000))]);
    expect(exit).toMatchObject({ code: 0 });
    await eventually(async () => (live.watchdog !== null && isRunning(live.watchdog)) || existsSync(live.tempDir), (busy) => !busy, 5000);
    await expectNothingLeft([dead, live]);
  }, 90_000);

  it("a new npm start waits for a dead run's watchdog that is still stopping things", async () => {
    const first = await startSupervisor();
    const dead = currentRecord();
    const watchdog = dead.watchdog!;
    // A stopped watchdog stands for one still busy stopping a slow gateway.
    process.kill(watchdog.pid, "SIGSTOP");
    try {
      await first.kill9();
      const second = await startSupervisor(/its watchdog \(pid \d+\) is stopping what it started\. Waiting for it/);
      expect(processesOf(dead).filter((p) => !isRunning(p)).map((p) => p.name)).toEqual([]);
      process.kill(watchdog.pid, "SIGCONT");
      await second.waitForLine(STARTED, 45_000, { includeSeen: true });
      expect(second.output()).toContain("the watchdog stopped everything");
      expect(second.output()).not.toContain("died without stopping what it started");
      expect(first.output()).toMatch(/\[start-watchdog\] stopped everything npm start/);
      expect(processesOf(dead).filter((p) => isRunning(p)).map((p) => p.name)).toEqual([]);
      const live = currentRecord();
      expect(await readyzThroughNginx()).toBe(200);

      process.kill(second.pid, "SIGTERM");
      expect(await second.exited).toMatchObject({ code: 0 });
      await eventually(async () => isRunning(live.watchdog!), (running) => !running, 5000);
      await expectNothingLeft([dead, live]);
    } finally {
      if (isRunning(watchdog)) process.kill(watchdog.pid, "SIGCONT");
    }
  }, 90_000);
});
