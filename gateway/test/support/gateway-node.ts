/**
 * Real gateway processes for tests: each node is `node dist/gateway/src/main.js`
 * in its own process (as in production), on a free port, ready when /readyz
 * says so.
 */

import path from "node:path";
import { freePort } from "../../../scripts/lib/ports.js";
import { startProcess, type ManagedProcess } from "../../../scripts/lib/process.js";
import { repoRoot } from "../../../scripts/lib/paths.js";

export const TEST_JWT_SECRET = "test-secret-0123456789abcdef";
export const TEST_PUBLISH_KEY = "test-publish-key-0123456789";

export interface GatewayNode {
  readonly name: string;
  readonly port: number;
  readonly httpUrl: string;
  readonly wsUrl: string;
  readonly proc: ManagedProcess;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartNodeOptions {
  readonly name: string;
  readonly redisUrl: string;
  readonly redisPrefix: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Wait for /readyz 200 (default) or only for the listening log line. */
  readonly waitReady?: boolean;
}

export async function startGatewayNode(options: StartNodeOptions): Promise<GatewayNode> {
  const port = await freePort();
  const httpUrl = `http://127.0.0.1:${port}`;
  const waitReady = options.waitReady ?? true;
  const proc = await startProcess({
    name: options.name,
    command: process.execPath,
    args: [path.join(repoRoot(), "dist/gateway/src/main.js")],
    env: {
      NODE_ID: options.name,
      HOST: "127.0.0.1",
      PORT: String(port),
      REDIS_URL: options.redisUrl,
      REDIS_PREFIX: options.redisPrefix,
      JWT_SECRET: TEST_JWT_SECRET,
      PUBLISH_KEY: TEST_PUBLISH_KEY,
      LOG_LEVEL: "info",
      UNSUBSCRIBE_DELAY_MS: "0",
      DRAIN_WINDOW_MS: "200",
      // The round clock needs Postgres; suites that test it turn it on.
      CLOCK_ENABLED: "false",
      ...options.env,
    },
    ...(waitReady
      ? {
          readyProbe: async () => {
            const res = await fetch(`${httpUrl}/readyz`, { signal: AbortSignal.timeout(1000) });
            return res.status === 200;
          },
        }
      : { readyLine: /"msg":"listening"/ }),
    timeoutMs: 15_000,
  });
  return {
    name: options.name,
    port,
    httpUrl,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    proc,
    stop: (signal = "SIGTERM") => proc.stop(signal, 10_000),
  };
}

let prefixCounter = 0;

/** A Redis key prefix no other test uses, so tests can share one Redis. */
export function uniquePrefix(label: string): string {
  prefixCounter++;
  return `t-${label}-${process.pid}-${prefixCounter}-${Date.now().toString(36)}`;
}
