/**
 * JSON as hostile clients and backends write it, generated as text: what
 * JSON.stringify cannot produce is the point (`1e400`, `-0`, 30-digit
 * integers, own `__proto__` keys, duplicate keys, lone surrogates, escapes),
 * next to plain values. Every generator is a fast-check arbitrary, so a
 * seed reproduces a run.
 */

import fc from "fast-check";

/** Keys that reach prototypes or shadow methods, and the protocol's own field names. */
export const HOSTILE_KEYS = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "valueOf", "", "id", "type", "channel", "data", "name", "since"] as const;

/** Numbers as text: the range edges, and literals no double holds. */
export const NUMBER_LITERALS = [
  "0",
  "-0",
  "1",
  "-1",
  "0.5",
  "1e400",
  "-1e400",
  "1E+308",
  "1.7976931348623157e308",
  "5e-324",
  "1e-400",
  "9007199254740991",
  "9007199254740992",
  "-9007199254740993",
  "123456789012345678901234567890",
  "0.30000000000000004",
] as const;

/** Strings a parser may trip on: escapes, control characters, lone surrogates, non-ASCII. */
const TRICKY_STRINGS = ["", " ", "\u0000", "\n", "\u2028", "\ud800", "\udfff", "\ud83d\ude00", "é", "\\", '"', "%00", "../", "<script>", "race", "user:alice", "forecasts:BTC"] as const;

/** A JSON string literal of `value`, the way JSON.stringify escapes it (lone surrogates as \uXXXX). */
export function stringLiteral(value: string): string {
  return JSON.stringify(value);
}

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 12 }) },
  { weight: 2, arbitrary: fc.constantFrom(...TRICKY_STRINGS) },
  { weight: 1, arbitrary: fc.string({ unit: "binary-ascii", minLength: 100, maxLength: 400 }) },
);

const numberText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.integer().map(String) },
  { weight: 2, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)) },
  { weight: 2, arbitrary: fc.constantFrom(...NUMBER_LITERALS) },
);

const keyText: fc.Arbitrary<string> = fc.oneof({ weight: 3, arbitrary: fc.string({ maxLength: 8 }) }, { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_KEYS) }).map(stringLiteral);

const scalarText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: numberText },
  { weight: 3, arbitrary: hostileString.map(stringLiteral) },
  { weight: 1, arbitrary: fc.constantFrom("true", "false", "null") },
);

/** Any JSON value as text, up to a few levels deep, objects with hostile and repeated keys included. */
export const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    { weight: 4, arbitrary: scalarText },
    { weight: 1, arbitrary: fc.array(tie("value"), { maxLength: 5 }).map((items) => `[${items.join(",")}]`) },
    { weight: 1, arbitrary: fc.array(fc.tuple(keyText, tie("value")), { maxLength: 5 }).map((entries) => `{${entries.map(([k, v]) => `${k}:${v}`).join(",")}}`) },
  ),
})).value;

/** `levels` nested arrays or objects around `inner`, built as text (a recursive stringify would overflow first). */
export function nestedText(levels: number, kind: "array" | "object", inner = "1"): string {
  return kind === "array" ? "[".repeat(levels) + inner + "]".repeat(levels) : '{"a":'.repeat(levels) + inner + "}".repeat(levels);
}

/** Nesting around the limit (MAX_JSON_DEPTH 32, frames 33) and far past it. */
export const deepText: fc.Arbitrary<string> = fc
  .tuple(fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 28, max: 40 }) }, { weight: 1, arbitrary: fc.integer({ min: 500, max: 3000 }) }), fc.constantFrom("array" as const, "object" as const))
  .map(([levels, kind]) => nestedText(levels, kind));

/** Text with one random edit: truncated, a character inserted, or a slice removed. Often no longer JSON. */
export function mutated(text: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.tuple(text, fc.nat(), fc.nat(), fc.string({ unit: "binary", minLength: 1, maxLength: 3 }), fc.constantFrom("truncate", "insert", "remove")).map(([source, a, b, insert, edit]) => {
    const at = source.length === 0 ? 0 : a % source.length;
    if (edit === "truncate") return source.slice(0, at);
    if (edit === "insert") return source.slice(0, at) + insert + source.slice(at);
    return source.slice(0, at) + source.slice(at + 1 + (b % 4));
  });
}
