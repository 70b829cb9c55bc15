/**
 * docs/protocol.schema.json: the client requests' JSON Schema, emitted from
 * shared/src/requests.ts by `npm run schema` and checked by a test, so the
 * committed file never drifts from what the gateway validates.
 */

import path from "node:path";
import { requestsJsonSchema } from "../../shared/src/requests.js";
import { repoRoot } from "./paths.js";

export function protocolSchemaPath(): string {
  return path.join(repoRoot(), "docs", "protocol.schema.json");
}

/** The file's exact contents. */
export function protocolSchemaText(): string {
  return `${JSON.stringify(requestsJsonSchema(), null, 2)}\n`;
}
