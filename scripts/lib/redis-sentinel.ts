/**
 * A Sentinel-watched Redis on free ports, for tests and benchmarks: a master,
 * its replicas and `redis-sentinel` processes (Debian's package) that agree
 * on it, with timeouts short enough that a killed master is replaced within
 * a few seconds. Everything lives in temp directories removed by stop().
 */

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { freePort } from "./ports.js";
import { startProcess, type ManagedProcess } from "./process.js";
import { startRedis, type RedisHandle } from "./redis.js";

export interface StartSentinelGroupOptions {
  /** The name the Sentinels monitor the master under (REDIS_SENTINEL_MASTER). */
  readonly masterName?: string;
  readonly replicas?: number;
  readonly sentinels?: number;
  /** How long the master must be silent before a Sentinel thinks it down. */
  readonly downAfterMs?: number;
  /** Sentinel's failover-timeout: also how soon a failed failover is retried. */
  readonly failoverTimeoutMs?: number;
}

export interface SentinelHandle {
  readonly port: number;
  readonly proc: ManagedProcess;
}

export interface SentinelGroup {
  readonly masterName: string;
  /** Master first, then the replicas; a failover does not reorder them. */
  readonly servers: RedisHandle[];
  readonly sentinels: SentinelHandle[];
  /** `host:port,…` of the Sentinels, as REDIS_SENTINELS takes it. */
  readonly sentinelList: string;
  /** The master's port as the Sentinels see it now. */
  masterPort(): Promise<number>;
  stop(): Promise<void>;
}

const SENTINEL_READY_MS = 15_000;

export async function startSentinelGroup(options: StartSentinelGroupOptions = {}): Promise<SentinelGroup> {
  const masterName = options.masterName ?? "gw-master";
  const servers: RedisHandle[] = [];
  const sentinels: SentinelHandle[] = [];
  const dirs: string[] = [];
  const stop = async (): Promise<void> => {
    for (const sentinel of sentinels) await sentinel.proc.stop("SIGTERM", 5000);
    for (const server of [...servers].reverse()) await server.stop();
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  };
  try {
    const master = await startRedis({ name: "redis-master" });
    servers.push(master);
    for (let i = 0; i < (options.replicas ?? 1); i++) {
      servers.push(await startRedis({ name: `redis-replica-${i + 1}`, replicaOf: { host: "127.0.0.1", port: master.port } }));
    }
    const count = options.sentinels ?? 3;
    const quorum = Math.floor(count / 2) + 1;
    for (let i = 0; i < count; i++) {
      const dir = await mkdtemp(path.join(os.tmpdir(), "gw-sentinel-"));
      dirs.push(dir);
      sentinels.push(await startSentinel(dir, masterName, master.port, quorum, options));
    }
    await agreed(sentinels, masterName, count - 1, servers.length - 1);
    const sentinelList = sentinels.map((s) => `127.0.0.1:${s.port}`).join(",");
    return {
      masterName,
      servers,
      sentinels,
      sentinelList,
      masterPort: () => askMaster(sentinels, masterName),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function startSentinel(dir: string, masterName: string, masterPort: number, quorum: number, options: StartSentinelGroupOptions): Promise<SentinelHandle> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    // Sentinel rewrites its config file as it learns: it must be its own, writable.
    const conf = path.join(dir, "sentinel.conf");
    await writeFile(
      conf,
      [
        `port ${port}`,
        "bind 127.0.0.1",
        "daemonize no",
        'logfile ""',
        `dir ${dir}`,
        `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} ${quorum}`,
        `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 1000}`,
        `sentinel failover-timeout ${masterName} ${options.failoverTimeoutMs ?? 5000}`,
        `sentinel parallel-syncs ${masterName} 1`,
        "",
      ].join("\n"),
    );
    try {
      const proc = await startProcess({ name: "redis-sentinel", command: "redis-sentinel", args: [conf], readyLine: /\+monitor master/, timeoutMs: 10_000 });
      return { port, proc };
    } catch (err) {
      if (!(err instanceof Error && /Address already in use/i.test(err.message)) || attempt >= 3) throw err;
    }
  }
}

/** Until every Sentinel knows the others and every replica: only then can they fail the master over. */
async function agreed(sentinels: readonly SentinelHandle[], masterName: string, otherSentinels: number, replicas: number): Promise<void> {
  const deadline = Date.now() + SENTINEL_READY_MS;
  for (const sentinel of sentinels) {
    const client = new Redis({ port: sentinel.port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      for (;;) {
        const known = (await client.call("SENTINEL", "SENTINELS", masterName)) as unknown[];
        const replicaList = (await client.call("SENTINEL", "REPLICAS", masterName)) as unknown[];
        if (known.length >= otherSentinels && replicaList.length >= replicas) break;
        if (Date.now() > deadline) throw new Error(`sentinel :${sentinel.port} knows ${known.length}/${otherSentinels} sentinels and ${replicaList.length}/${replicas} replicas after ${SENTINEL_READY_MS} ms`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      client.disconnect();
    }
  }
}

async function askMaster(sentinels: readonly SentinelHandle[], masterName: string): Promise<number> {
  for (const sentinel of sentinels) {
    if (!sentinel.proc.isRunning()) continue;
    const client = new Redis({ port: sentinel.port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      const reply = (await client.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName)) as [string, string] | null;
      if (reply !== null) return Number(reply[1]);
    } finally {
      client.disconnect();
    }
  }
  throw new Error("no sentinel answered with the master");
}
