/**
 * A cluster as clients see it, on free loopback ports: one Redis, `nodes`
 * gateway processes (dist/gateway/src/main.js) and NGINX in front with the
 * repository's nginx.conf. No Postgres, so no round clock: every frame on
 * `race` comes from whoever drives the cluster.
 */

import { startNginx, type NginxHandle } from "../../scripts/lib/nginx.js";
import type { ManagedProcess } from "../../scripts/lib/process.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { startBenchNodes } from "./bench-nodes.js";

export interface LocalClusterOptions {
  readonly jwtSecret: string;
  readonly publishKey: string;
  /** Default 3. */
  readonly nodes?: number;
  /** Distinguishes this cluster's Redis prefix and node names in logs. */
  readonly label: string;
  /**
   * Per-address connection limits (NGINX's, and the nodes' CONNECTS_PER_ADDRESS_PER_S):
   * the production defaults, or off for full-size load, where k6 is every client behind
   * one address. Default "default".
   */
  readonly addressLimits?: "default" | "off";
}

export interface LocalCluster {
  /** NGINX: http://127.0.0.1:<port> */
  readonly baseUrl: string;
  readonly nodeNames: readonly string[];
  stop(): Promise<void>;
}

export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  let redis: RedisHandle | undefined;
  const nodes: ManagedProcess[] = [];
  let nginx: NginxHandle | undefined;
  const stop = async (): Promise<void> => {
    await nginx?.stop();
    await Promise.all(nodes.map((node) => node.stop("SIGTERM", 10_000)));
    await redis?.stop();
  };
  try {
    redis = await startRedis();
    const prefix = `${options.label}-${process.pid}-${Date.now().toString(36)}`;
    const started = await startBenchNodes(
      { label: options.label, count: options.nodes ?? 3, redisEnv: { REDIS_URL: redis.url }, prefix, jwtSecret: options.jwtSecret, publishKey: options.publishKey, addressLimits: options.addressLimits ?? "default" },
      nodes,
    );
    nginx = await startNginx({ nodes: started, ...(options.addressLimits === "off" ? { limits: "off" as const } : {}) });
    return { baseUrl: nginx.url, nodeNames: started.map((node) => node.name), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
