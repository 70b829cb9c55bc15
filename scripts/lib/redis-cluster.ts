/**
 * A Redis Cluster on free ports, for tests and benchmarks: `masters` cluster
 * nodes (and `replicasPerMaster` replicas each) joined with
 * `redis-cli --cluster create`, ready once every node sees every slot served
 * and every replica has synced. A short node timeout makes a killed master's
 * replica take over within a few seconds. Everything lives in temp
 * directories removed by stop().
 */

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { startRedis, type RedisHandle } from "./redis.js";

const run = promisify(execFile);

export interface StartRedisClusterOptions {
  readonly masters?: number;
  readonly replicasPerMaster?: number;
  /** cluster-node-timeout: how long a silent node takes to be failed over. */
  readonly nodeTimeoutMs?: number;
}

export interface RedisClusterHandle {
  /** Every node, in creation order (redis-cli makes the first `masters` masters). */
  readonly nodes: RedisHandle[];
  /** `host:port,…` of every node, as REDIS_CLUSTER_NODES takes it. */
  readonly seeds: string;
  /** Ports of the nodes that are masters now. */
  masterPorts(): Promise<number[]>;
  /** Starts node `index` again on its port and nodes.conf, after it was stopped or killed; it rejoins (as a replica if it was failed over). */
  restart(index: number): Promise<void>;
  /** Until every running node reports `cluster_state:ok` and agrees on the masters. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const DEFAULT_NODE_TIMEOUT_MS = 1000;

export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 0;
  const nodeTimeoutMs = options.nodeTimeoutMs ?? DEFAULT_NODE_TIMEOUT_MS;
  const nodes: RedisHandle[] = [];
  const stop = async (): Promise<void> => {
    for (const node of [...nodes].reverse()) await node.stop();
  };
  try {
    const started = await Promise.all(
      Array.from({ length: masters * (1 + replicas) }, (_, i) => startRedis({ name: `redis-cluster-${i + 1}`, clusterNodeTimeoutMs: nodeTimeoutMs })),
    );
    nodes.push(...started);
    const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
    await run("redis-cli", ["--cluster", "create", ...addresses, "--cluster-replicas", String(replicas), "--cluster-yes"], { timeout: 30_000 });
    const handle: RedisClusterHandle = {
      nodes,
      seeds: addresses.join(","),
      masterPorts: async () => (await clusterView(nodes)).masters,
      restart: async (index) => {
        const node = nodes[index];
        if (node === undefined) throw new Error(`no cluster node ${index}`);
        if (node.proc.isRunning()) await node.proc.stop("SIGTERM", 5000);
        // Same port and directory: it reads its nodes.conf and rejoins.
        const restarted = await startRedis({ name: `redis-cluster-${index + 1}`, port: node.port, dir: node.dir, clusterNodeTimeoutMs: nodeTimeoutMs });
        // The directory stays the first process's: its stop() removes it, after the new one stopped.
        nodes[index] = {
          ...restarted,
          stop: async () => {
            await restarted.stop();
            await node.stop();
          },
        };
      },
      waitHealthy: (timeoutMs = 20_000) => waitHealthy(nodes, masters, replicas, timeoutMs),
      stop,
    };
    await handle.waitHealthy();
    return handle;
  } catch (err) {
    await stop();
    throw err;
  }
}

interface ClusterView {
  readonly masters: number[];
  /** Per running node: cluster_state is ok, and it counts the expected masters and connected, synced replicas. */
  readonly healthy: boolean;
  readonly detail: string;
}

async function clusterView(nodes: readonly RedisHandle[], expectMasters = 0, expectReplicas = 0): Promise<ClusterView> {
  const running = nodes.filter((node) => node.proc.isRunning());
  const views = await Promise.all(
    running.map(async (node) => {
      const client = new Redis({ port: node.port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await client.connect();
        const info = (await client.call("CLUSTER", "INFO")) as string;
        const table = (await client.call("CLUSTER", "NODES")) as string;
        const replication = await client.info("replication");
        return { port: node.port, info, table, replication };
      } finally {
        client.disconnect();
      }
    }),
  );
  const masters = liveMasters(views[0]?.table ?? "");
  const ok = views.every((view) => /cluster_state:ok/.test(view.info));
  const agreeOnMasters = views.every((view) => liveMasters(view.table).join() === masters.join());
  // A replica is of use once its link to the master is up and the first sync is over.
  const replicasSynced = views.filter((view) => /role:slave/.test(view.replication)).every((view) => /master_link_status:up/.test(view.replication) && /master_sync_in_progress:0/.test(view.replication));
  const replicaCount = views.filter((view) => /role:slave/.test(view.replication)).length;
  return {
    masters,
    healthy: ok && agreeOnMasters && masters.length >= expectMasters && replicasSynced && replicaCount >= expectReplicas,
    detail: views.map((view) => `:${view.port} ${/cluster_state:\w+/.exec(view.info)?.[0] ?? "?"} ${/role:\w+/.exec(view.replication)?.[0] ?? "?"}`).join(", "),
  };
}

/** Ports of the masters that serve slots and are not failed, from CLUSTER NODES: `id addr flags master ping pong epoch link slot…`. */
function liveMasters(table: string): number[] {
  return table
    .split("\n")
    .map((line) => line.trim().split(" "))
    .filter((fields) => {
      const flags = (fields[2] ?? "").split(",");
      return flags.includes("master") && !flags.includes("fail") && !flags.includes("fail?") && fields.length > 8;
    })
    .map((fields) => Number(/:(\d+)@/.exec(fields[1] ?? "")?.[1]))
    .sort((a, b) => a - b);
}

async function waitHealthy(nodes: readonly RedisHandle[], masters: number, replicasPerMaster: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const running = (): number => nodes.filter((node) => node.proc.isRunning()).length;
  let last = "";
  while (Date.now() < deadline) {
    const view = await clusterView(nodes, masters, Math.max(0, Math.min(masters * replicasPerMaster, running() - masters))).catch((err: Error) => ({ healthy: false, detail: err.message, masters: [] }));
    if (view.healthy) return;
    last = view.detail;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`redis cluster not healthy after ${timeoutMs} ms: ${last}`);
}
