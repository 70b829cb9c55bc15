/**
 * Fault drills: a real cluster (Redis, three gateway processes, NGINX), SDK
 * clients connected through NGINX, and a publisher that keeps publishing to a
 * public channel and to every client's personal channel through all nodes,
 * retrying each publish with its idempotency key until it is acknowledged.
 * After a fault, every client must hold every acknowledged offset of its
 * channels exactly once, in order.
 */

import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { connect, type GatewayClient, type ResumedInfo } from "../../../shared/src/client/index.js";
import { startNginx, type NginxHandle } from "../../../scripts/lib/nginx.js";
import { startRedis, type RedisHandle } from "../../../scripts/lib/redis.js";
import { ackedOffsets, IdempotentPublisher } from "../../../loadtest/lib/idempotent-publisher.js";
import { eventually } from "./eventually.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./gateway-node.js";
import { token } from "./tokens.js";

export const PUBLIC_CHANNEL = "forecasts:drill";

export interface DrillOptions {
  readonly label: string;
  readonly clients: number;
  /** Redis with an append-only file in a directory that outlives restarts. */
  readonly persistence?: "aof" | "none";
}

interface Received {
  readonly offset: number;
  readonly epoch: string;
  /** The publisher's sequence number in the message (`data.seq`), when it has one. */
  readonly seq?: number;
}

/** One SDK client and everything its application saw. */
export class DrillClient {
  readonly received = new Map<string, Received[]>();
  /** The SDK's `resumed` events: every rejoin of a channel, and whether it lost anything. */
  readonly resumed: ResumedInfo[] = [];
  /** Connection history, for a drill's failure message. */
  readonly trail: string[] = [];
  /** Resolves when every subscription is confirmed by the server. */
  readonly ready: Promise<void>;

  constructor(
    readonly sub: string,
    readonly client: GatewayClient,
    /** Channels besides the drill's public one and the personal one. */
    private readonly extraChannels: readonly string[] = [],
  ) {
    client.on("resumed", (info) => this.resumed.push(info));
    const at = (): string => new Date().toISOString().slice(17, 23);
    client.on("connected", (info) => this.trail.push(`${at()} connected ${info.node}`));
    client.on("disconnected", (info) => this.trail.push(`${at()} disconnected ${info.code} ${info.reason}`));
    client.on("reconnecting", (info) => this.trail.push(`${at()} reconnecting #${info.attempt} in ${Math.round(info.delayMs)} ms after ${info.code} (${info.strategy})`));
    client.on("error", (err) => this.trail.push(`${at()} error ${err.code} ${err.message}`));
    const subscriptions = this.channels().map((channel) => {
      this.received.set(channel, []);
      return client.subscribe(channel, {
        message: (_event, data, meta) => {
          if (meta.offset === null || meta.epoch === null) return;
          const seq = typeof data === "object" && data !== null && "seq" in data && typeof data.seq === "number" ? data.seq : undefined;
          this.received.get(channel)?.push({ offset: meta.offset, epoch: meta.epoch, ...(seq === undefined ? {} : { seq }) });
        },
      });
    });
    this.ready = Promise.all(subscriptions.map((subscription) => subscription.ready())).then(() => undefined);
  }

  channels(): string[] {
    return [PUBLIC_CHANNEL, `user:${this.sub}`, ...this.extraChannels];
  }

  /** What it received on `channel` in `epoch`, as `offset:seq`. */
  messages(channel: string, epoch: string): string[] {
    return (this.received.get(channel) ?? []).filter((r) => r.epoch === epoch).map((r) => `${r.offset}:${r.seq ?? "?"}`);
  }

  offsets(channel: string, epoch?: string): number[] {
    return (this.received.get(channel) ?? []).filter((r) => epoch === undefined || r.epoch === epoch).map((r) => r.offset);
  }
}

export class DrillCluster {
  readonly clients: DrillClient[] = [];
  publisher!: IdempotentPublisher;

  private constructor(
    readonly prefix: string,
    public redis: RedisHandle,
    readonly redisDir: string,
    readonly nodes: GatewayNode[],
    readonly nginx: NginxHandle,
    private readonly options: DrillOptions,
  ) {}

  static async start(options: DrillOptions): Promise<DrillCluster> {
    const redisDir = await mkdtemp(path.join(os.tmpdir(), "gw-drill-redis-"));
    const redis = await startRedis({ dir: redisDir, persistence: options.persistence ?? "none" });
    const prefix = uniquePrefix(`drill-${options.label}`);
    const nodes = await Promise.all(["node-1", "node-2", "node-3"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env: nodeEnv() })));
    const nginx = await startNginx({ nodes: nodes.map((node) => ({ name: node.name, host: "127.0.0.1", port: node.port })) });
    const cluster = new DrillCluster(prefix, redis, redisDir, nodes, nginx, options);
    const users = Array.from({ length: options.clients }, (_, i) => `${options.label}-${i}`);
    for (const sub of users) cluster.clients.push(new DrillClient(sub, connect(`${nginx.url.replace(/^http/, "ws")}/ws`, { token: token({ sub }) }, { WebSocket, initialDelayMs: 200, maxDelayMs: 1000, drainJitterMs: 300 })));
    // Every subscription confirmed before the first publish.
    await Promise.all(cluster.clients.map((c) => c.ready));
    cluster.publisher = new IdempotentPublisher({
      nodes: () => cluster.nodes.map((node) => node.httpUrl),
      publishKey: TEST_PUBLISH_KEY,
      // Alternately the public channel and the next user's personal channel.
      channelOf: (seq) => (seq % 2 === 0 ? PUBLIC_CHANNEL : `user:${users[Math.floor(seq / 2) % users.length] as string}`),
      intervalMs: 5,
      maxMessages: 5000,
      maxDurationMs: 120_000,
    });
    return cluster;
  }

  /** Which node each client is on now. */
  clientsPerNode(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const c of this.clients) counts.set(c.client.node ?? "none", (counts.get(c.client.node ?? "none") ?? 0) + 1);
    return counts;
  }

  async restartNode(index: number, signal: NodeJS.Signals): Promise<void> {
    const node = this.nodes[index] as GatewayNode;
    if (signal === "SIGKILL") await node.proc.kill9();
    else await node.stop(signal);
    this.nodes[index] = await startGatewayNode({ name: node.name, port: node.port, redisUrl: this.redis.url, redisPrefix: this.prefix, env: nodeEnv() });
  }

  async restartRedis(): Promise<void> {
    await this.redis.proc.stop("SIGTERM", 10_000);
    this.redis = await startRedis({ port: this.redis.port, dir: this.redisDir, persistence: this.options.persistence ?? "none" });
  }

  /**
   * Waits until every client holds the last acknowledged offset of each of its
   * channels, then returns, per client and channel, what it received against
   * what was acknowledged (same epoch).
   */
  async settle(timeoutMs = 30_000): Promise<void> {
    const behind = (): string[] =>
      this.clients.flatMap((c) =>
        c.channels().flatMap((channel) => {
          const last = this.publisher.acked.get(channel)?.at(-1);
          if (last === undefined || c.offsets(channel, last.epoch).includes(last.offset)) return [];
          const got = c.offsets(channel, last.epoch);
          return [`${c.sub} ${channel}: has ${got.length} up to ${got.at(-1) ?? "none"}, last acked ${last.offset}; state ${c.client.state} on ${c.client.node ?? "?"}; resumed ${JSON.stringify(c.resumed.filter((r) => r.channel === channel))}; trail ${c.trail.slice(-8).join(" | ")}`];
        }),
      );
    try {
      await eventually(async () => behind().length === 0, (done) => done, timeoutMs);
    } catch {
      const stuck = this.clients.find((c) => c.client.state !== "connected");
      const probe = stuck === undefined ? "" : await this.probeUpgrade(stuck);
      const nginxLog = (await this.nginx.errorLog().catch(() => "")).split("\n").slice(-6).join("\n");
      throw new Error(`clients still behind after ${timeoutMs} ms:\n${behind().slice(0, 10).join("\n")}\nprobe: ${probe}\nnginx error.log tail:\n${nginxLog}`);
    }
  }

  /** What an upgrade like the SDK's gets now through NGINX, for a failure message. */
  private probeUpgrade(c: DrillClient): Promise<string> {
    const position = c.client.position(`user:${c.sub}`);
    const since = position === undefined ? "" : `&since=${position.offset}:${position.epoch}`;
    const url = `${this.nginx.url.replace(/^http/, "ws")}/ws?token=${token({ sub: c.sub })}${since}`;
    return new Promise((resolve) => {
      const socket = new WebSocket(url);
      socket.on("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve(`${url.replace(/token=[^&]+/, "token=…")} → ${res.statusCode} ${body}`));
      });
      socket.on("open", () => {
        socket.close();
        resolve(`${url.replace(/token=[^&]+/, "token=…")} → open`);
      });
      socket.on("error", (err) => resolve(`error ${err.message}`));
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.client.close()));
    await this.nginx.stop();
    await Promise.all(this.nodes.map((node) => node.stop()));
    await this.redis.stop();
    await rm(this.redisDir, { recursive: true, force: true });
  }
}

function nodeEnv(): Record<string, string> {
  return { LOG_LEVEL: "warn", DRAIN_WINDOW_MS: "300" };
}

export { ackedOffsets };
