/**
 * The start record on disk: one owner at a time, whole or not at all, and nothing in it is
 * acted on unless it has the expected shape.
 */

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claimRecord, newRecord, readRecord, removeRecord, saveRecord, setAsideRecord } from "../lib/start-record.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "gw-record-test-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const supervisor = { pid: 4242, startTicks: 1000 };
const sample = () => newRecord(supervisor, "boot-1", "/tmp/gw-start-AbC123");

describe("start record", () => {
  it("is claimed by one run only, updated whole, and removed only by its own run", async () => {
    const file = path.join(dir, "claim.json");
    const mine = sample();
    claimRecord(file, mine);
    expect(() => claimRecord(file, sample())).toThrow(expect.objectContaining({ code: "EEXIST" }));

    mine.stages.push({ name: "storage", processes: [{ pid: 4243, startTicks: 1001, name: "redis", stopSignal: "SIGTERM", command: "redis-server" }] });
    saveRecord(file, mine);
    expect(readRecord(file)).toEqual({ kind: "record", record: mine });
    // No temp files left behind by the atomic writes.
    expect(existsSync(`${file}.${process.pid}.tmp`)).toBe(false);

    removeRecord(file, "another-run");
    expect(existsSync(file)).toBe(true);
    removeRecord(file, mine.runId);
    expect(readRecord(file)).toEqual({ kind: "none" });
  });

  it("is not acted on when its shape is wrong, and can be set aside", async () => {
    const file = path.join(dir, "bad.json");
    const good = JSON.parse(JSON.stringify(sample())) as Record<string, unknown>;
    const cases: Array<[Record<string, unknown> | string, RegExp]> = [
      ["{ not json", /JSON/],
      [{ ...good, version: 2 }, /not a version 1 record/],
      [{ ...good, tempDir: "/" }, /unexpected tempDir/],
      [{ ...good, tempDir: "/home/me" }, /unexpected tempDir/],
      [{ ...good, supervisor: { pid: 1, startTicks: 5 } }, /"pid" must be a pid/],
      [{ ...good, stages: [{ name: "x", processes: [{ pid: 99, startTicks: 1, name: "p", stopSignal: "rm -rf", command: "" }] }] }, /"stopSignal" must be a signal name/],
    ];
    for (const [content, reason] of cases) {
      await writeFile(file, typeof content === "string" ? content : JSON.stringify(content));
      const found = readRecord(file);
      expect(found.kind).toBe("unreadable");
      expect(found.kind === "unreadable" ? found.reason : "").toMatch(reason);
    }
    const aside = setAsideRecord(file);
    expect(existsSync(file)).toBe(false);
    expect(await readFile(aside, "utf8")).toContain("stopSignal");
  });
});
