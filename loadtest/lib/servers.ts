/**
 * The servers a benchmark row measures, started as their own processes and
 * stopped again: gateway nodes (optionally behind NGINX) with production
 * defaults except what a generator on loopback needs switched off, or one of
 * the baselines in loadtest/baselines/. Optionally each with the V8
 * inspector open, so the controller can collect garbage before reading
 * memory, profile the CPU or take heap snapshots.
 */

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startGatewayProcess } from "../../scripts/lib/gateway.js";
import { startNginx, type NginxHandle } from "../../scripts/lib/nginx.js";
import { repoRoot } from "../../scripts/lib/paths.js";
import { freePort } from "../../scripts/lib/ports.js";
import { startProcess, type ManagedProcess } from "../../scripts/lib/process.js";
import type { RedisHandle } from "../../scripts/lib/redis.js";
import type { WsCompression } from "../../gateway/src/transport/ws-compression.js";

export const BENCH_JWT_SECRET = "bench-secret-0123456789abcdef";
export const BENCH_PUBLISH_KEY = "bench-publish-key-0123456789";

/**
 * gateway: this gateway. Baselines (loadtest/baselines/): uws-bare, a bare
 * uWebSockets.js server (the floor); socketio-uws, plain Socket.IO attached
 * to uWS; socketio-node, Socket.IO on Node's HTTP server; ws-naive, a `ws`
 * loop. Every baseline but uws-bare checks the same HS256 token.
 */
export type ServerKind = "gateway" | "uws-bare" | "socketio-uws" | "socketio-node" | "ws-naive";

const BASELINE_SCRIPTS: Readonly<Record<Exclude<ServerKind, "gateway">, string>> = {
  "uws-bare": "uws-bare.js",
  "socketio-uws": "socketio-uws.js",
  "socketio-node": "socketio-node.js",
  "ws-naive": "ws-naive.js",
};

export interface ServerSpec {
  /** Names the Redis prefix, so rows never share state. */
  readonly id: string;
  readonly server: ServerKind;
  /** Gateway nodes; baselines are always one process. */
  readonly nodes: number;
  readonly nginx: boolean;
  /** WS_COMPRESSION of the nodes with WS_COMPRESSION_MIN_BYTES=0; null: the default (off). */
  readonly compression: WsCompression | null;
  /** More gateway variables, over the bench's own. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface ServerProcess {
  readonly name: string;
  readonly proc: ManagedProcess;
  readonly port: number;
  /** `ws://…` of its inspector, when started with one. */
  readonly inspectorUrl: string | null;
}

export interface Servers {
  /** ws:// bases the clients connect to. */
  readonly clientTargets: string[];
  /** http:// bases that accept POST /v1/publish. */
  readonly publishTargets: string[];
  /** The measured server processes (gateway nodes or the baseline), in start order. */
  readonly processes: readonly ServerProcess[];
  readonly nginx: NginxHandle | null;
  stop(): Promise<void>;
}

/** Which processes get `--inspect=127.0.0.1:0`. */
export type Inspect = "none" | "first" | "all";

/** A copy of nginx/nginx.conf for this box: see docs/performance.md on worker_connections. */
export async function benchNginxConf(dir: string): Promise<string> {
  const original = await readFile(path.join(repoRoot(), "nginx", "nginx.conf"), "utf8");
  // The stock 9,500 connections × 2 workers hold 9,500 proxied sockets (two
  // connections each), short of the 10k row. 19,000 stays under the 20,000
  // descriptors a worker may open.
  const conf = original.replace(/worker_connections\s+\d+;/, "worker_connections 19000;");
  const file = path.join(dir, "nginx.bench.conf");
  await writeFile(file, conf);
  return file;
}

async function inspectorUrlOf(proc: ManagedProcess): Promise<string> {
  const line = await proc.waitForLine(/Debugger listening on ws:\/\//, 5000, { includeSeen: true });
  const url = /(ws:\/\/\S+)/.exec(line)?.[1];
  if (url === undefined) throw new Error(`${proc.name}: no inspector URL in "${line}"`);
  return url;
}

/** The environment of a benchmark's gateway node: production defaults, with what a loopback generator and a benchmark need changed. */
export function benchGatewayEnv(spec: ServerSpec, redis: RedisHandle, prefix: string): NodeJS.ProcessEnv {
  return {
    REDIS_URL: redis.url,
    REDIS_PREFIX: prefix,
    JWT_SECRET: BENCH_JWT_SECRET,
    PUBLISH_KEY: BENCH_PUBLISH_KEY,
    LOG_LEVEL: "warn",
    // No Postgres here, and no backend feeding the ingest stream.
    CLOCK_ENABLED: "false",
    INGEST_ENABLED: "false",
    IDLE_TIMEOUT_S: "120",
    DRAIN_WINDOW_MS: "200",
    // Every frame compressed for the clients that offer it, whatever its size: the row measures the cost at that size.
    ...(spec.compression === null ? {} : { WS_COMPRESSION: spec.compression, WS_COMPRESSION_MIN_BYTES: "0" }),
    // The generators are thousands of clients behind a few loopback addresses.
    // Everything else (MAX_CONNECTIONS_PER_USER in Redis, the per-connection
    // rates, JWT lifetime rules) keeps its production default.
    CONNECTS_PER_ADDRESS_PER_S: "0",
    ...spec.env,
  };
}

export async function startServers(spec: ServerSpec, redis: RedisHandle, inspect: Inspect): Promise<Servers> {
  const prefix = `bench-${spec.id}-${Date.now().toString(36)}`;
  const started: ServerProcess[] = [];
  const stopProcs = async (): Promise<void> => {
    for (const { proc } of [...started].reverse()) await proc.stop("SIGTERM", 5000);
  };
  const inspectArgs = (i: number): string[] => (inspect === "all" || (inspect === "first" && i === 0) ? ["--inspect=127.0.0.1:0"] : []);
  try {
    if (spec.server === "gateway") {
      const nodes = await Promise.all(
        Array.from({ length: spec.nodes }, async (_, i) => {
          const name = `bench-node-${i + 1}`;
          const port = await freePort();
          const nodeArgs = inspectArgs(i);
          const proc = await startGatewayProcess({ name, port, nodeArgs, env: benchGatewayEnv(spec, redis, prefix), timeoutMs: 30_000 });
          const entry: ServerProcess = { name, proc, port, inspectorUrl: nodeArgs.length > 0 ? await inspectorUrlOf(proc) : null };
          started.push(entry);
          return entry;
        }),
      );
      let nginx: NginxHandle | null = null;
      if (spec.nginx) {
        const dir = await mkdtemp(path.join(os.tmpdir(), "gw-bench-nginx-conf-"));
        try {
          nginx = await startNginx({ nodes: nodes.map(({ name, port }) => ({ name, host: "127.0.0.1", port })), confPath: await benchNginxConf(dir), limits: "off" });
        } finally {
          // startNginx copies the file into its own prefix directory.
          await rm(dir, { recursive: true, force: true });
        }
      }
      const direct = nodes.map((n) => `127.0.0.1:${n.port}`);
      return {
        clientTargets: nginx ? [`ws://127.0.0.1:${nginx.port}`] : direct.map((a) => `ws://${a}`),
        publishTargets: nginx ? [`http://127.0.0.1:${nginx.port}`] : direct.map((a) => `http://${a}`),
        processes: nodes,
        nginx,
        stop: async () => {
          await nginx?.stop();
          await stopProcs();
        },
      };
    }
    const port = await freePort();
    const nodeArgs = inspectArgs(0);
    const proc = await startProcess({
      name: spec.server,
      command: process.execPath,
      args: [...nodeArgs, path.join(repoRoot(), "dist/loadtest/baselines", BASELINE_SCRIPTS[spec.server])],
      env: { PORT: String(port), JWT_SECRET: BENCH_JWT_SECRET, PUBLISH_KEY: BENCH_PUBLISH_KEY, REDIS_URL: redis.url, REDIS_PREFIX: prefix },
      readyLine: /^listening \d+/,
      timeoutMs: 15_000,
    });
    started.push({ name: spec.server, proc, port, inspectorUrl: nodeArgs.length > 0 ? await inspectorUrlOf(proc) : null });
    return {
      clientTargets: [`ws://127.0.0.1:${port}`],
      publishTargets: [`http://127.0.0.1:${port}`],
      processes: started,
      nginx: null,
      stop: stopProcs,
    };
  } catch (err) {
    await stopProcs();
    throw err;
  }
}
