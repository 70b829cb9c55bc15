/**
 * The memory budget the "memory > 80 %" alert compares RSS with: the
 * operator's MEMORY_LIMIT_MB when set, else the container's cgroup limit,
 * else the machine's physical memory.
 */

import { readFileSync } from "node:fs";
import { totalmem } from "node:os";

function cgroupLimitBytes(): number | null {
  for (const file of ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8").trim();
    } catch {
      continue; // not this cgroup version
    }
    const bytes = Number(text);
    // "max" or the v1 sentinel (close to 2^63) both mean unlimited.
    if (Number.isFinite(bytes) && bytes > 0 && bytes < totalmem()) return bytes;
  }
  return null;
}

export function memoryLimitBytes(configuredMb: number | null): number {
  if (configuredMb !== null) return configuredMb * 1024 * 1024;
  return cgroupLimitBytes() ?? totalmem();
}
