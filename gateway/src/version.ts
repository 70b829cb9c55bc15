/**
 * The gateway's version, as GET /v1/info reports it: package.json's, read
 * once. The image keeps package.json beside dist/ (see Dockerfile).
 */

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

let cached: string | null = null;

/** package.json's `version`, from dist/gateway/src/version.js (or the source tree); "unknown" without one. */
export function gatewayVersion(): string {
  if (cached !== null) return cached;
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../package.json");
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as { version?: unknown };
    cached = typeof parsed.version === "string" ? parsed.version : "unknown";
  } catch {
    // No package.json beside dist/ (a hand-made deployment): the version is not known.
    cached = "unknown";
  }
  return cached;
}
