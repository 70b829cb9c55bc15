/**
 * Summarises a V8 .heapsnapshot: object count and shallow (self) size per
 * kind of object, and the difference between two snapshots, so what N
 * connections added to a heap can be read per connection and per type.
 *
 * Kinds: an object's constructor name; `(closure) name` for functions;
 * strings by the patterns the caller names (the personal channel's
 * `user:<sub>`, the `sub` itself), else `(string)`; arrays, V8's hidden
 * objects (contexts, maps) and code by their snapshot type.
 */

export interface HeapKind {
  readonly kind: string;
  readonly count: number;
  readonly selfBytes: number;
}

export interface HeapSummary {
  readonly kinds: ReadonlyMap<string, HeapKind>;
  readonly totalBytes: number;
  readonly nodes: number;
}

interface RawSnapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: readonly string[]; readonly node_types: readonly [readonly string[], ...unknown[]] } };
  readonly nodes: readonly number[];
  readonly strings: readonly string[];
}

export interface StringPattern {
  readonly label: string;
  readonly pattern: RegExp;
}

function kindOf(type: string, name: string, strings: readonly StringPattern[]): string {
  switch (type) {
    case "object":
      return name;
    case "closure":
      return `(closure) ${name || "anonymous"}`;
    case "string":
    case "concatenated string":
    case "sliced string": {
      for (const s of strings) if (s.pattern.test(name)) return `(string) ${s.label}`;
      return "(string)";
    }
    case "native":
      return `(native) ${name}`;
    case "hidden":
      return `(hidden) ${name}`;
    case "array":
      return `(array) ${name}`;
    default:
      return `(${type})`;
  }
}

export function summariseHeap(json: string, strings: readonly StringPattern[] = []): HeapSummary {
  const raw = JSON.parse(json) as RawSnapshot;
  const fields = raw.snapshot.meta.node_fields;
  const types = raw.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const kinds = new Map<string, { kind: string; count: number; selfBytes: number }>();
  let totalBytes = 0;
  for (let i = 0; i < raw.nodes.length; i += width) {
    const type = types[raw.nodes[i + typeAt]!] ?? "unknown";
    const name = raw.strings[raw.nodes[i + nameAt]!] ?? "";
    const size = raw.nodes[i + sizeAt]!;
    const kind = kindOf(type, name, strings);
    let entry = kinds.get(kind);
    if (entry === undefined) kinds.set(kind, (entry = { kind, count: 0, selfBytes: 0 }));
    entry.count++;
    entry.selfBytes += size;
    totalBytes += size;
  }
  return { kinds, totalBytes, nodes: raw.nodes.length / width };
}

export interface HeapDelta {
  readonly kind: string;
  readonly count: number;
  readonly selfBytes: number;
}

/** What `after` holds more than `before`, per kind, largest first. */
export function heapDelta(before: HeapSummary, after: HeapSummary): HeapDelta[] {
  const names = new Set([...before.kinds.keys(), ...after.kinds.keys()]);
  const deltas: HeapDelta[] = [];
  for (const kind of names) {
    const a = after.kinds.get(kind);
    const b = before.kinds.get(kind);
    deltas.push({ kind, count: (a?.count ?? 0) - (b?.count ?? 0), selfBytes: (a?.selfBytes ?? 0) - (b?.selfBytes ?? 0) });
  }
  return deltas.sort((x, y) => y.selfBytes - x.selfBytes);
}

/** A markdown table of the largest deltas, per connection. */
export function renderHeapDelta(deltas: readonly HeapDelta[], connections: number, rows = 25): string {
  const total = deltas.reduce((sum, d) => sum + d.selfBytes, 0);
  const lines = [
    "| kind | objects per connection | bytes per connection | share |",
    "|---|---:|---:|---:|",
    ...deltas.slice(0, rows).map((d) => `| \`${d.kind.replace(/\|/g, "\\|").slice(0, 80)}\` | ${(d.count / connections).toFixed(2)} | ${(d.selfBytes / connections).toFixed(1)} | ${((d.selfBytes / Math.max(1, total)) * 100).toFixed(1)} % |`),
    `| **all kinds** | ${(deltas.reduce((s, d) => s + d.count, 0) / connections).toFixed(2)} | **${(total / connections).toFixed(1)}** | 100 % |`,
  ];
  return lines.join("\n");
}
