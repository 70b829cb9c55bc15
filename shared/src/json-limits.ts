/**
 * Structural limits on JSON that clients and backends send. JSON.parse copes
 * with any nesting, but JSON.stringify, socket.io-parser and every other
 * recursive walker overflow the stack somewhere past a few thousand levels,
 * and one such message reaches every node. So depth is checked once, at the
 * edge, before anything is encoded, with a walk that itself never recurses.
 */

/** Default for MAX_JSON_DEPTH: deeper than any real feed, far below any stack limit. */
export const DEFAULT_MAX_JSON_DEPTH = 32;

/**
 * The nesting depth of a parsed JSON value: 0 for a scalar, 1 for `{}` or
 * `[1]`, 2 for `{"a":[]}`. Stops counting once past `limit`, so a hostile value
 * costs no more than the part of it the limit allows.
 */
export function jsonDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: Array<{ readonly value: unknown; readonly depth: number }> = [{ value, depth: 0 }];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    if (typeof top.value !== "object" || top.value === null) continue;
    const depth = top.depth + 1;
    if (depth > deepest) deepest = depth;
    if (depth > limit) return depth;
    const children = Array.isArray(top.value) ? top.value : Object.values(top.value);
    for (const child of children) {
      if (typeof child === "object" && child !== null) stack.push({ value: child, depth });
    }
  }
  return deepest;
}

/** Whether `value` nests deeper than `maxDepth` levels. */
export function exceedsJsonDepth(value: unknown, maxDepth: number): boolean {
  return jsonDepth(value, maxDepth) > maxDepth;
}

/**
 * Whether `value` holds a number JSON.parse could not represent: a literal
 * past the double range (`1e400`) parses as Infinity, which JSON.stringify
 * then writes as `null`. Accepting it would deliver different data than was
 * sent, so bodies holding one are refused. Iterative, like jsonDepth; call it
 * after the depth check.
 */
export function hasNonFiniteNumber(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const top = stack.pop();
    if (typeof top === "number") {
      if (!Number.isFinite(top)) return true;
    } else if (typeof top === "object" && top !== null) {
      for (const child of Array.isArray(top) ? top : Object.values(top)) stack.push(child);
    }
  }
  return false;
}
