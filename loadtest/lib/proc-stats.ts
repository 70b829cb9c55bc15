/**
 * Resource readings of other processes from /proc (Linux only), taken from
 * outside so the measured servers run unmodified.
 */

import { readFileSync, readdirSync } from "node:fs";

/** Kernel clock ticks per second for utime/stime; 100 on every Linux we run on (`getconf CLK_TCK`). */
const CLK_TCK = 100;

/** Resident set size in bytes (VmRSS), or NaN when the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : Number.NaN;
  } catch {
    // The process exited between listing and reading; the caller reports NaN.
    return Number.NaN;
  }
}

/** User + system CPU seconds the process has used so far, or NaN when it is gone. */
export function cpuSeconds(pid: number): number {
  const { user, system } = cpuSplit(pid);
  return user + system;
}

/**
 * User and system CPU seconds separately. On loopback the system share matters:
 * a send() there also runs the receiving socket's TCP input path, so the
 * server pays kernel time for its clients' receive side too.
 */
export function cpuSplit(pid: number): { user: number; system: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm (field 2) may contain spaces and parentheses: split after its closing one.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: Number(rest[11]) / CLK_TCK, system: Number(rest[12]) / CLK_TCK };
  } catch {
    return { user: Number.NaN, system: Number.NaN };
  }
}

/** Direct children of `pid` (e.g. NGINX workers under the master). */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // Gone while we listed /proc: not a child any more.
    }
  }
  return children;
}

/** Busy and total jiffies of the whole machine (all cores), from /proc/stat. */
export function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}
