import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Repository root, found by walking up from this module. Works both for the compiled copy
 * (dist/scripts/lib) and for the sources run directly by vitest (scripts/lib), and does not
 * depend on the caller's cwd.
 */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, "package.json")) && existsSync(path.join(dir, "nginx", "nginx.conf"))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("repository root (package.json + nginx/nginx.conf) not found");
    dir = parent;
  }
}
