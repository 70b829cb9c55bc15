import { defineConfig } from "vitest/config";

/**
 * Files whose assertions compare latencies between two phases of one run: on a
 * 2-core machine another integration file in parallel (a k6 run, a thousand
 * sockets) moves those figures more than what they test does. `npm test` runs
 * them alone after the rest (TEST_PHASE=quiet); a plain `vitest run` runs all.
 */
const QUIET_FILES = ["gateway/test/slow-consumer-socketio.test.ts"];

const ALL_FILES = ["gateway/test/**/*.test.ts", "shared/test/**/*.test.ts", "scripts/test/**/*.test.ts", "deploy/test/**/*.test.ts", "web/test/**/*.test.ts"];

const phase = process.env["TEST_PHASE"];
if (phase !== undefined && phase !== "parallel" && phase !== "quiet") {
  throw new Error(`TEST_PHASE must be "parallel" or "quiet", not "${phase}"`);
}

export default defineConfig({
  test: {
    include: phase === "quiet" ? QUIET_FILES : ALL_FILES,
    exclude: phase === "parallel" ? ["**/node_modules/**", ...QUIET_FILES] : ["**/node_modules/**"],
    globalSetup: ["gateway/test/support/global-setup.ts"],
    // Every answer of a gateway node, in every file, is checked against docs/openapi.yaml.
    setupFiles: ["gateway/test/support/openapi-setup.ts"],
    // Integration files start their own Redis and gateway processes on free
    // ports; two at a time keeps a 2-core machine responsive.
    pool: "forks",
    maxWorkers: phase === "quiet" ? 1 : 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
  },
});
