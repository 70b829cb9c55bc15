// npm run schema: writes docs/protocol.schema.json from shared/src/requests.ts.
// Run it after changing a request; shared/test/protocol-schema.test.ts fails until then.
import { writeFile } from "node:fs/promises";
import { protocolSchemaPath, protocolSchemaText } from "./lib/protocol-schema.js";

const target = protocolSchemaPath();
await writeFile(target, protocolSchemaText());
process.stdout.write(`schema: wrote ${target}\n`);
