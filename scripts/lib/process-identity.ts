/**
 * Which process a pid means. A pid alone is no identity: pid_max is 32768 on these machines,
 * so numbers come round again on a busy box, and a number recorded by a dead `npm start` may
 * by now belong to somebody's editor. The pid together with the kernel's start time of the
 * process (clock ticks after boot, field 22 of /proc/<pid>/stat) and the boot id is unique.
 *
 * Linux only: where /proc is missing nothing can be identified, and callers signal nothing.
 */

import { readdirSync, readFileSync } from "node:fs";

export interface ProcessIdentity {
  readonly pid: number;
  /** When the process started, in clock ticks after boot. */
  readonly startTicks: number;
}

interface ProcStat {
  readonly pid: number;
  /** R, S, D, Z (zombie: exited, not yet reaped), ... */
  readonly state: string;
  readonly pgrp: number;
  readonly session: number;
  readonly startTicks: number;
}

function readStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    // The process is gone (or this is not Linux): either way there is nothing to identify.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ESRCH") return null;
    throw err;
  }
  // "pid (comm) state ppid pgrp session ...": comm may contain spaces and parentheses, so
  // the fields are counted from the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  const pgrp = Number(fields[2]);
  const session = Number(fields[3]);
  const startTicks = Number(fields[19]);
  if (state === undefined || !Number.isInteger(pgrp) || !Number.isInteger(session) || !Number.isInteger(startTicks)) {
    throw new Error(`unexpected /proc/${pid}/stat: ${text}`);
  }
  return { pid, state, pgrp, session, startTicks };
}

/** A zombie has exited and holds no ports or files; only its parent's wait() is missing. */
function isLive(stat: ProcStat): boolean {
  return stat.state !== "Z" && stat.state !== "X";
}

/** The running process `pid`, or null when there is none (or only a zombie). */
export function identify(pid: number): ProcessIdentity | null {
  const stat = readStat(pid);
  return stat !== null && isLive(stat) ? { pid, startTicks: stat.startTicks } : null;
}

/** True while the very process `id` names is running (same pid and same start tick). */
export function isRunning(id: ProcessIdentity): boolean {
  const stat = readStat(id.pid);
  return stat !== null && isLive(stat) && stat.startTicks === id.startTicks;
}

/** Identifies this boot, so that start ticks recorded before a reboot are never compared. */
export function bootId(): string | null {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/**
 * The running members of the process group and session that `leader` created with setsid()
 * (what `detached: true` does), the leader included while it runs. Members can outlive their
 * leader: nginx workers after their master was SIGKILLed, a postmaster after runuser.
 *
 * The kernel never hands out a number that still names a process group, so processes whose
 * group is `leader.pid` are the leader's own, unless the whole group died and the number came
 * round to a new session leader. Two checks rule that out as far as /proc can tell: a running
 * process with that pid but another start tick means the number belongs to somebody else now
 * (nothing is returned), and members must have started no earlier than the leader.
 */
export function groupMembers(leader: ProcessIdentity): ProcessIdentity[] {
  const holder = readStat(leader.pid);
  if (holder !== null && isLive(holder) && holder.startTicks !== leader.startTicks) return [];
  const members: ProcessIdentity[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat === null || !isLive(stat)) continue;
    if (stat.pgrp !== leader.pid || stat.session !== leader.pid || stat.startTicks < leader.startTicks) continue;
    members.push({ pid: stat.pid, startTicks: stat.startTicks });
  }
  return members;
}

/**
 * Sends `signal` to what is left of `leader`'s group: to the whole group at once while the
 * leader runs, otherwise to each member found by groupMembers(). Returns how many processes
 * were signalled (0: nothing of it is left).
 */
export function signalGroupOf(leader: ProcessIdentity, signal: NodeJS.Signals): number {
  if (isRunning(leader)) {
    if (sendSignal(-leader.pid, signal)) return 1;
  }
  let sent = 0;
  for (const member of groupMembers(leader)) if (sendSignal(member.pid, signal)) sent++;
  return sent;
}

function sendSignal(target: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(target, signal);
    return true;
  } catch (err) {
    // ESRCH: it exited between the check and the signal, which is what the caller wants.
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}
