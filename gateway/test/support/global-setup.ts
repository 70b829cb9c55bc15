/**
 * Tests run the compiled gateway, as production does. `npm test` builds
 * first; this builds when the output is missing (a bare `npx vitest`).
 *
 * It also opens the run's log of answers checked against docs/openapi.yaml
 * (support/openapi-recorder.ts) and, at the end, says how many were checked
 * and on which routes.
 */

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { repoRoot } from "../../../scripts/lib/paths.js";
import { RESPONSE_LOG_VARIABLE } from "./openapi-recorder.js";

export default function setup(): () => void {
  const root = repoRoot();
  if (!existsSync(path.join(root, "dist/gateway/src/main.js"))) {
    execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { cwd: root, stdio: "inherit" });
  }
  const dir = mkdtempSync(path.join(tmpdir(), "gw-openapi-"));
  const log = path.join(dir, "responses.log");
  writeFileSync(log, "");
  // Inherited by the test workers, which start after this.
  process.env[RESPONSE_LOG_VARIABLE] = log;
  return () => {
    const lines = readFileSync(log, "utf8").split("\n").filter((line) => line.length > 0);
    const checked = lines.filter((line) => !line.includes(" UNREAD"));
    const routes = new Set(checked.map((line) => line.split(" ").slice(0, 2).join(" ")));
    process.stdout.write(`openapi: ${checked.length} answers of gateway nodes checked against docs/openapi.yaml, on ${routes.size} method+path pairs\n`);
    rmSync(dir, { recursive: true, force: true });
  };
}
