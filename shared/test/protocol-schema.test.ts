/** The committed docs/protocol.schema.json is what shared/src/requests.ts emits. */

import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { protocolSchemaPath, protocolSchemaText } from "../../scripts/lib/protocol-schema.js";

describe("docs/protocol.schema.json", () => {
  it("is up to date with shared/src/requests.ts (run `npm run schema`)", async () => {
    expect(await readFile(protocolSchemaPath(), "utf8")).toBe(protocolSchemaText());
  });
});
