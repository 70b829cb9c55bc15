/**
 * Summarizes a V8 .cpuprofile (what `node --cpu-prof` and the inspector's
 * Profiler.stop write): self time per function, summed over every node of the
 * call tree that names it.
 */

export interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
    readonly children?: readonly number[];
  }>;
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface SelfTimeRow {
  readonly fn: string;
  readonly where: string;
  readonly selfMs: number;
  readonly share: number;
}

function shortUrl(url: string): string {
  if (url === "") return "(native)";
  const at = url.lastIndexOf("/node_modules/");
  if (at !== -1) return url.slice(at + "/node_modules/".length);
  const dist = url.indexOf("/dist/");
  if (dist !== -1) return url.slice(dist + "/dist/".length);
  return url.replace(/^file:\/\//, "").replace(/^node:/, "node:");
}

export function selfTimes(profile: CpuProfile, top: number): { rows: SelfTimeRow[]; totalMs: number; idleMs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    // timeDeltas[i] is the time since the previous sample; attribute it to this one.
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, profile.timeDeltas[i] ?? 0));
  }
  const byFunction = new Map<string, { fn: string; where: string; us: number }>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    totalUs += us;
    const fn = node.callFrame.functionName || "(anonymous)";
    if (fn === "(idle)") idleUs += us;
    const where = node.callFrame.url ? `${shortUrl(node.callFrame.url)}:${node.callFrame.lineNumber + 1}` : "(native)";
    const key = `${fn}@${where}`;
    const row = byFunction.get(key) ?? { fn, where, us: 0 };
    row.us += us;
    byFunction.set(key, row);
  }
  const rows = [...byFunction.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((r) => ({ fn: r.fn, where: r.where, selfMs: r.us / 1000, share: totalUs > 0 ? r.us / totalUs : 0 }));
  return { rows, totalMs: totalUs / 1000, idleMs: idleUs / 1000 };
}

export function renderSelfTimes(profile: CpuProfile, top = 20): string {
  const { rows, totalMs, idleMs } = selfTimes(profile, top);
  const busyMs = totalMs - idleMs;
  const lines = [
    `profiled ${(totalMs / 1000).toFixed(1)} s, main thread busy ${(busyMs / 1000).toFixed(1)} s (${((busyMs / Math.max(totalMs, 1)) * 100).toFixed(0)} %)`,
    "",
    "| self ms | % of profile | function | where |",
    "|---:|---:|---|---|",
    ...rows.map((r) => `| ${r.selfMs.toFixed(0)} | ${(r.share * 100).toFixed(1)} | \`${r.fn}\` | ${r.where} |`),
  ];
  return lines.join("\n");
}
