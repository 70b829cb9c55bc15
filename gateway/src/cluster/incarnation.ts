/**
 * A node incarnation: the node id plus a random suffix, new at every start
 * (and after a lapsed lease), so a node restarted under the same NODE_ID
 * never inherits what its previous life wrote into Redis.
 */

import { randomBytes } from "node:crypto";

/** `<nodeId>.<8 hex>`: NODE_ID's characters (A-Z a-z 0-9 _ - .), never `=` or `,`. */
export function newIncarnation(nodeId: string): string {
  return `${nodeId}.${randomBytes(4).toString("hex")}`;
}
