/**
 * The server API's credential: `Authorization: Bearer <PUBLISH_KEY>`, the same
 * for every backend route (publish, history).
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { bearerToken } from "../auth/verifier.js";

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/** A check of the Authorization header against `key`, constant-time whatever the lengths (digests are compared). */
export function apiKeyCheck(key: string): (authorizationHeader: string) => boolean {
  const expected = digest(key);
  return (header) => {
    const presented = bearerToken(header);
    return presented !== undefined && timingSafeEqual(digest(presented), expected);
  };
}
