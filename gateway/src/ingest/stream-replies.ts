/**
 * Redis stream replies as typed values. Pure: a reply of an unexpected shape
 * throws (the ingest loop counts and retries), it is never guessed at.
 * Entries may come as strings or, read with ioredis' callBuffer, as bytes:
 * then every field is decoded here, and a value that is not UTF-8 is named
 * in `notUtf8` instead of being passed on with U+FFFD in it unnoticed.
 */

import { isUtf8 } from "node:buffer";

export interface StreamEntry {
  readonly id: string;
  /** Field/value pairs, flat; null when the entry was trimmed from the stream while pending. */
  readonly fields: readonly string[] | null;
  /** Fields whose value was not UTF-8 (decoded in `fields` with U+FFFD); absent when none. */
  readonly notUtf8?: readonly string[];
}

/** One row of XPENDING with a range. */
export interface PendingEntry {
  readonly id: string;
  readonly consumer: string;
  readonly idleMs: number;
}

export interface AutoclaimResult {
  /** Where the next XAUTOCLAIM starts; "0-0" once the whole pending list was scanned. */
  readonly cursor: string;
  readonly claimed: number;
  /** Pending ids whose entries were trimmed from the stream (deleted from the pending list by Redis). */
  readonly deleted: number;
}

/** The value of `name` in an entry's flat field/value pairs, the first one if repeated. */
export function entryField(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** Compares stream ids `ms-seq` numerically; both parts can exceed 2^53. */
export function compareIds(a: string, b: string): number {
  const [aMs = "0", aSeq = "0"] = a.split("-");
  const [bMs = "0", bSeq = "0"] = b.split("-");
  const ms = BigInt(aMs) - BigInt(bMs);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(aSeq) - BigInt(bSeq);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

function isText(value: unknown): value is string | Buffer {
  return typeof value === "string" || Buffer.isBuffer(value);
}

function parseEntries(value: unknown): StreamEntry[] {
  if (!Array.isArray(value)) throw new Error("unexpected stream entries reply");
  return value.map((raw: unknown) => {
    if (!Array.isArray(raw) || !isText(raw[0])) throw new Error("unexpected stream entry");
    const id = raw[0].toString();
    const pairs: unknown = raw[1];
    if (pairs === null) return { id, fields: null };
    if (!Array.isArray(pairs) || !pairs.every(isText)) throw new Error("unexpected stream entry fields");
    const fields = pairs.map((item) => item.toString());
    // Only a name's first value counts, as in entryField.
    const notUtf8: string[] = [];
    const seen = new Set<string>();
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const name = fields[i] as string;
      const raw = pairs[i + 1];
      if (!seen.has(name) && Buffer.isBuffer(raw) && !isUtf8(raw)) notUtf8.push(name);
      seen.add(name);
    }
    return notUtf8.length === 0 ? { id, fields } : { id, fields, notUtf8 };
  });
}

/** XREADGROUP: null (timed out) or [[key, entries]]. */
export function parseReadReply(reply: unknown): StreamEntry[] {
  if (reply === null) return [];
  if (!Array.isArray(reply)) throw new Error("unexpected XREADGROUP reply");
  const stream: unknown = reply[0];
  if (stream === undefined) return [];
  if (!Array.isArray(stream)) throw new Error("unexpected XREADGROUP reply");
  return parseEntries(stream[1]);
}

/** XPENDING with a range: [[id, consumer, idle ms, deliveries], …]. */
export function parsePendingReply(reply: unknown): PendingEntry[] {
  if (!Array.isArray(reply)) throw new Error("unexpected XPENDING reply");
  return reply.map((row: unknown) => {
    if (!Array.isArray(row) || typeof row[0] !== "string" || typeof row[1] !== "string" || typeof row[2] !== "number") throw new Error("unexpected XPENDING row");
    return { id: row[0], consumer: row[1], idleMs: row[2] };
  });
}

/** XAUTOCLAIM (Redis ≥ 7): [next cursor, claimed entries, ids deleted from the stream]. */
export function parseAutoclaimReply(reply: unknown): AutoclaimResult {
  if (!Array.isArray(reply) || typeof reply[0] !== "string") throw new Error("unexpected XAUTOCLAIM reply");
  const deleted: unknown = reply[2];
  return { cursor: reply[0], claimed: parseEntries(reply[1]).length, deleted: Array.isArray(deleted) ? deleted.length : 0 };
}
