/**
 * Tests run the compiled gateway, as production does. `npm test` builds
 * first; this builds when the output is missing (a bare `npx vitest`).
 */

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../../../scripts/lib/paths.js";

export default function setup(): void {
  const root = repoRoot();
  if (!existsSync(path.join(root, "dist/gateway/src/main.js"))) {
    execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { cwd: root, stdio: "inherit" });
  }
}
