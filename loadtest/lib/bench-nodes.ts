/**
 * Gateway nodes for a load run, on free loopback ports: quiet logs, no round
 * clock and no ingest (every frame comes from whoever drives the run), a short
 * drain, and optionally without the per-address connect limit (every load
 * client comes from one address).
 */

import { startGatewayProcess } from "../../scripts/lib/gateway.js";
import { freePort } from "../../scripts/lib/ports.js";
import type { ManagedProcess } from "../../scripts/lib/process.js";

export interface BenchNodesOptions {
  /** Nodes are named `<label>-node-<n>`. */
  readonly label: string;
  readonly count: number;
  /** Where Redis is: `REDIS_URL`, or the Cluster's or Sentinels' variables. */
  readonly redisEnv: Readonly<Record<string, string>>;
  readonly prefix: string;
  readonly jwtSecret: string;
  readonly publishKey: string;
  readonly addressLimits: "default" | "off";
  /** More variables, over the ones above. */
  readonly env?: Readonly<Record<string, string>>;
}

export interface BenchNode {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

/** Starts the nodes; each is added to `started` once it runs, so the caller can stop it even when another one fails. */
export function startBenchNodes(options: BenchNodesOptions, started: ManagedProcess[]): Promise<BenchNode[]> {
  return Promise.all(
    Array.from({ length: options.count }, async (_, i) => {
      const name = `${options.label}-node-${i + 1}`;
      const port = await freePort();
      const proc = await startGatewayProcess({
        name,
        port,
        env: {
          ...options.redisEnv,
          REDIS_PREFIX: options.prefix,
          JWT_SECRET: options.jwtSecret,
          PUBLISH_KEY: options.publishKey,
          LOG_LEVEL: "warn",
          CLOCK_ENABLED: "false",
          INGEST_ENABLED: "false",
          DRAIN_WINDOW_MS: "200",
          ...(options.addressLimits === "off" ? { CONNECTS_PER_ADDRESS_PER_S: "0" } : {}),
          ...options.env,
        },
        timeoutMs: 30_000,
      });
      started.push(proc);
      return { name, host: "127.0.0.1", port };
    }),
  );
}
