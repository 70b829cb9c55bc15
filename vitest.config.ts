import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["gateway/test/**/*.test.ts", "shared/test/**/*.test.ts", "scripts/test/**/*.test.ts", "deploy/test/**/*.test.ts", "web/test/**/*.test.ts"],
    globalSetup: ["gateway/test/support/global-setup.ts"],
    // Integration files start their own Redis and gateway processes on free
    // ports; two at a time keeps a 2-core machine responsive.
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
  },
});
