import { describe, expect, it } from "vitest";
import { exceedsJsonDepth, hasNonFiniteNumber, jsonDepth } from "../src/json-limits.js";

describe("jsonDepth", () => {
  it("counts nesting levels of objects and arrays, scalars being 0", () => {
    expect(jsonDepth(1, 32)).toBe(0);
    expect(jsonDepth(null, 32)).toBe(0);
    expect(jsonDepth({}, 32)).toBe(1);
    expect(jsonDepth([1, "a"], 32)).toBe(1);
    expect(jsonDepth({ a: [] }, 32)).toBe(2);
    expect(jsonDepth({ a: 1, b: { c: [{ d: null }] } }, 32)).toBe(4);
  });

  it("walks a value far deeper than the stack allows without recursing, stopping past the limit", () => {
    const deep = JSON.parse('['.repeat(200_000) + "]".repeat(200_000)) as unknown;
    expect(jsonDepth(deep, 32)).toBe(33);
    expect(exceedsJsonDepth(deep, 32)).toBe(true);
  });

  it("accepts exactly the limit and refuses one more", () => {
    const at = (levels: number): unknown => JSON.parse('{"a":'.repeat(levels) + "1" + "}".repeat(levels));
    expect(exceedsJsonDepth(at(32), 32)).toBe(false);
    expect(exceedsJsonDepth(at(33), 32)).toBe(true);
  });
});

describe("hasNonFiniteNumber", () => {
  it("finds a number JSON.parse could only read as Infinity, at any depth", () => {
    expect(hasNonFiniteNumber(JSON.parse("1e400"))).toBe(true);
    expect(hasNonFiniteNumber(JSON.parse('{"a":[1,{"b":-1e999}]}'))).toBe(true);
    expect(hasNonFiniteNumber(JSON.parse('{"a":[1,{"b":1.7976931348623157e308}],"c":"1e400"}'))).toBe(false);
    expect(hasNonFiniteNumber(JSON.parse('[null,true,"x",0,-0,123456789012345678901234567890]'))).toBe(false);
  });
});
