/**
 * Real gateway processes for tests: each node is its own process (as in
 * production, started by scripts/lib/gateway.ts) on a free port, with test
 * secrets and a test's Redis prefix, ready when /readyz says so.
 */

import { startGatewayProcess } from "../../../scripts/lib/gateway.js";
import { freePort } from "../../../scripts/lib/ports.js";
import type { ManagedProcess } from "../../../scripts/lib/process.js";

export const TEST_JWT_SECRET = "test-secret-0123456789abcdef";
export const TEST_PUBLISH_KEY = "test-publish-key-0123456789";
/** Seals race seeds in Redis (nodes run in production mode, which requires it with the clock on). */
export const TEST_ROUND_SEED_KEY = "test-round-seed-key-0123456789abcdef";

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
  /** REDIS_URL; leave it out for a node that reaches Redis through REDIS_SENTINELS or REDIS_CLUSTER_NODES in `env`. */
  readonly redisUrl?: string;
  readonly redisPrefix: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Wait for /readyz 200 (default) or only for the listening log line. */
  readonly waitReady?: boolean;
  /** A port to listen on, e.g. a killed node's, so NGINX's upstream finds it again; default a free one. */
  readonly port?: number;
}

/** Starts on a free port, or on `options.port`; a free port taken meanwhile by another test's process is replaced, twice at most. */
export async function startGatewayNode(options: StartNodeOptions): Promise<GatewayNode> {
  if (options.port !== undefined) return startOnPort(options, options.port);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnPort(options, await freePort());
    } catch (err) {
      // The node listens with the port to itself (gateway/src/server.ts), so a port
      // handed out twice fails the start instead of sharing connections.
      if (attempt >= 3 || !(err instanceof Error) || !err.message.includes("cannot listen on")) throw err;
    }
  }
}

async function startOnPort(options: StartNodeOptions, port: number): Promise<GatewayNode> {
  const proc = await startGatewayProcess({
    name: options.name,
    port,
    env: {
      // Blank counts as unset, and overrides a REDIS_URL the test run may have inherited.
      REDIS_URL: options.redisUrl ?? "",
      REDIS_PREFIX: options.redisPrefix,
      JWT_SECRET: TEST_JWT_SECRET,
      PUBLISH_KEY: TEST_PUBLISH_KEY,
      ROUND_SEED_KEY: TEST_ROUND_SEED_KEY,
      LOG_LEVEL: "info",
      UNSUBSCRIBE_DELAY_MS: "0",
      DRAIN_WINDOW_MS: "200",
      // The round clock needs Postgres; suites that test it turn it on.
      CLOCK_ENABLED: "false",
      ...options.env,
    },
    ...(options.waitReady === undefined ? {} : { waitReady: options.waitReady }),
  });
  return {
    name: options.name,
    port,
    httpUrl: `http://127.0.0.1:${port}`,
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
