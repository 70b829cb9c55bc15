/** Reads a node's /metrics and sums one metric over the series whose labels match. */
export async function metricValue(httpUrl: string, name: string, labels: Readonly<Record<string, string>> = {}): Promise<number> {
  const res = await fetch(`${httpUrl}/metrics`);
  const text = await res.text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const seriesLabels = new Map<string, string>();
    for (const pair of (match[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)) {
      seriesLabels.set(pair[1] as string, pair[2] as string);
    }
    if (Object.entries(labels).every(([key, value]) => seriesLabels.get(key) === value)) sum += Number(match[4]);
  }
  return sum;
}
