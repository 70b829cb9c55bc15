import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { freePort } from "./ports.js";
import { startProcess, type ManagedProcess } from "./process.js";

export interface StartRedisOptions {
  /** Fixed port; default: a free port (retried if another process grabs it first). */
  port?: number;
  /** Working directory for redis; default: a fresh temp dir, removed on stop(). */
  dir?: string;
  echo?: boolean;
  timeoutMs?: number;
  /**
   * "aof": an append-only file in `dir`, fsynced every second, so channel
   * offsets, epochs and history survive a restart on the same dir (npm start,
   * the Redis restart drill). Default "none": tests need speed, not durability.
   */
  persistence?: "aof" | "none";
  /** A replica of this master (`--replicaof`): ready once its first sync is done. */
  replicaOf?: { readonly host: string; readonly port: number };
  /** A Redis Cluster node (`--cluster-enabled`, its nodes.conf in `dir`), with this node timeout. */
  clusterNodeTimeoutMs?: number;
  /** The process name in logs and errors; default "redis". */
  name?: string;
}

export interface RedisHandle {
  url: string;
  port: number;
  /** Its working directory (a cluster node's nodes.conf lives there). */
  dir: string;
  proc: ManagedProcess;
  stop(): Promise<void>;
}

const BIND_RETRIES = 3;

export async function startRedis(options: StartRedisOptions = {}): Promise<RedisHandle> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(path.join(os.tmpdir(), "gw-redis-")));
  try {
    // freePort() cannot reserve the port, so on a busy machine another process can take it
    // between probe and bind; retry with a new port only when we picked it ourselves.
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await freePort());
      try {
        const proc = await startProcess({
          name: options.name ?? "redis",
          command: "redis-server",
          args: [
            "--port", String(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", options.persistence === "aof" ? "yes" : "no",
            "--appendfsync", "everysec",
            "--dir", dir,
            "--daemonize", "no",
            "--logfile", "",
            // A replica's first sync starts at once, not after Redis' default 5 s wait for more replicas.
            "--repl-diskless-sync-delay", "0",
            ...(options.replicaOf === undefined ? [] : ["--replicaof", options.replicaOf.host, String(options.replicaOf.port)]),
            ...(options.clusterNodeTimeoutMs === undefined
              ? []
              : ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", String(options.clusterNodeTimeoutMs)]),
          ],
          // A replica is of use once it holds the master's data.
          readyLine: options.replicaOf === undefined ? /Ready to accept connections/ : /MASTER <-> REPLICA sync: Finished with success/,
          timeoutMs: options.timeoutMs ?? 10_000,
          echo: options.echo ?? false,
        });
        return {
          url: `redis://127.0.0.1:${port}`,
          port,
          dir,
          proc,
          stop: async () => {
            await proc.stop("SIGTERM", 5000);
            if (ownDir) await rm(dir, { recursive: true, force: true });
          },
        };
      } catch (err) {
        const inUse = err instanceof Error && /Address already in use/i.test(err.message);
        if (!inUse || options.port !== undefined || attempt >= BIND_RETRIES) throw err;
      }
    }
  } catch (err) {
    if (ownDir) await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
