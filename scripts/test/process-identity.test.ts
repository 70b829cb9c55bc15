/**
 * Identifying processes by pid and start tick, with real processes: a recorded identity
 * reaches its process and what outlived it in its group, and never a process that merely has
 * the same pid.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { eventually } from "../../gateway/test/support/eventually.js";
import { groupMembers, identify, isRunning, signalGroupOf, type ProcessIdentity } from "../lib/process-identity.js";

const spawned: ChildProcess[] = [];
const orphans: ProcessIdentity[] = [];

afterEach(() => {
  for (const child of spawned.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const orphan of orphans.splice(0)) if (isRunning(orphan)) process.kill(orphan.pid, "SIGKILL");
});

async function spawnDetached(command: string, args: string[]): Promise<ChildProcess & { pid: number }> {
  const child = spawn(command, args, { detached: true, stdio: ["pipe", "pipe", "inherit"] });
  spawned.push(child);
  await once(child, "spawn");
  if (child.pid === undefined) throw new Error(`${command} did not start`);
  return child as ChildProcess & { pid: number };
}

describe("process identity", () => {
  it("names a running process by pid and start tick, until it exits", async () => {
    const child = await spawnDetached("sleep", ["60"]);
    const id = identify(child.pid);
    expect(id).not.toBeNull();
    expect(isRunning(id!)).toBe(true);
    expect(identify(process.pid)?.startTicks).toBeLessThanOrEqual(id!.startTicks);

    child.kill("SIGKILL");
    await once(child, "exit");
    expect(isRunning(id!)).toBe(false);
  });

  it("never signals a process that only shares the recorded pid", async () => {
    const child = await spawnDetached("sleep", ["60"]);
    const real = identify(child.pid)!;
    // What a record holds when the number has come round to another process.
    const recycled = { pid: real.pid, startTicks: real.startTicks + 1 };
    expect(isRunning(recycled)).toBe(false);
    expect(groupMembers(recycled)).toEqual([]);
    expect(signalGroupOf(recycled, "SIGKILL")).toBe(0);
    expect(isRunning(real)).toBe(true);
  });

  it("reaches group members that outlived their leader, and stops them", async () => {
    // The shell is the leader (detached: its own group and session); its background sleep
    // stays when the shell exits, like nginx workers after a SIGKILLed master.
    const shell = await spawnDetached("sh", ["-c", "sleep 60 & echo $!; read line"]);
    const leader = identify(shell.pid)!;
    const [firstLine] = (await once(shell.stdout!, "data")) as [Buffer];
    const orphan = identify(Number(firstLine.toString().trim()));
    expect(orphan).not.toBeNull();
    orphans.push(orphan!);
    expect(groupMembers(leader).map((m) => m.pid).sort()).toEqual([leader.pid, orphan!.pid].sort());

    shell.stdin!.end("go\n");
    await once(shell, "exit");
    expect(isRunning(leader)).toBe(false);
    expect(groupMembers(leader)).toEqual([orphan]);

    expect(signalGroupOf(leader, "SIGTERM")).toBe(1);
    await eventually(async () => isRunning(orphan!), (running) => !running, 5000);
    expect(groupMembers(leader)).toEqual([]);
    expect(signalGroupOf(leader, "SIGTERM")).toBe(0);
  });
});
