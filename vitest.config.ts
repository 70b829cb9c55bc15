import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["gateway/test/**/*.test.ts", "shared/test/**/*.test.ts", "scripts/test/**/*.test.ts", "deploy/test/**/*.test.ts", "web/test/**/*.test.ts"],
    globalSetup: ["gateway/test/support/global-setup.ts"],
    // Every answer of a gateway node, in every file, is checked against docs/openapi.yaml.
    setupFiles: ["gateway/test/support/openapi-setup.ts"],
    // Integration files start their own Redis and gateway processes on free
    // ports; two at a time keeps a 2-core machine responsive.
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
  },
});
