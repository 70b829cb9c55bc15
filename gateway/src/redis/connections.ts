/**
 * Every Redis connection of the node is opened here: the broker's publisher
 * and subscriber, the clock ledger, the ingest reader, history reads, the
 * connection quota and Socket.IO's adapter pair. Each role states how it
 * behaves while Redis is away (queue commands or fail fast, retries,
 * resubscription); where Redis is — one server, a master that Sentinels
 * name, or a Cluster — and how to reach it is decided in this module only.
 *
 * - Standalone: one connection per role to REDIS_URL.
 * - Sentinel: the same, but ioredis asks the Sentinels for the master at
 *   every (re)connect, and reconnects when the server it holds was demoted,
 *   so every role follows failovers by itself.
 * - Cluster: each role gets an ioredis Cluster (commands routed by slot), and
 *   the broker's subscriber is a ShardedBusSubscriber (SSUBSCRIBE per master).
 *   Roles that must not run a command twice or wait for it (`offlineQueue:
 *   false`) fail at once where ioredis would retry a command whose connection
 *   closed or whose slot has no master.
 */

import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import { SingleBusSubscriber, type BusSubscriber, type BusSubscriberEvents } from "./bus-subscriber.js";
import { ShardedBusSubscriber } from "./sharded-subscriber.js";
import type { RedisTopology } from "./topology.js";

/** A log field and the reason for each connection. */
export type RedisRole = "publisher" | "subscriber" | "clock" | "ingest" | "history" | "socketio-adapter" | "limits" | "control" | "cluster-state";

/** What every role can send: one server's connection, or a Cluster that routes each command by its keys' slot. */
export type RedisClient = Redis | Cluster;

export type RedisMode = RedisTopology["kind"];

export interface RedisRoleOptions {
  /** Queue commands while disconnected and send them on reconnect (true), or fail them at once (false). */
  readonly offlineQueue: boolean;
  /** Reconnections a command waits through before it fails. */
  readonly maxRetriesPerRequest: number;
  /** Re-issue SUBSCRIBE after a reconnect (ioredis does it); false where the owner does it itself. Default true. */
  readonly autoResubscribe?: boolean;
  /**
   * Send again, after a reconnect, the commands that were sent but never
   * answered (ioredis's default, true). False for commands that must not run
   * twice: one may have run before the connection dropped.
   */
  readonly resendUnanswered?: boolean;
  /** Client-side bound on every command, in ms; none by default. */
  readonly commandTimeoutMs?: number;
  /**
   * Send the commands issued in one tick in one write (ioredis
   * enableAutoPipelining). For roles that issue a command per connecting
   * socket, where one write per command cost ~15 % of a node's connect time.
   * Standalone and Sentinel only: on a Cluster, ioredis 5 files an
   * auto-pipelined EVALSHA under the slot of its first argument, the sha, not
   * its key, and refuses the mixed pipeline (redis/ioredis#2109).
   */
  readonly autoPipelining?: boolean;
  /** Cluster only: SSUBSCRIBE goes to the master of each channel's slot (ioredis's sharded subscribers). */
  readonly shardedSubscribers?: boolean;
}

export interface RedisConnections {
  /** Callers that name keys, scripts or pub/sub channels adapt to a Cluster (one slot per script, sharded pub/sub). */
  readonly mode: RedisMode;
  /**
   * A new connection for `role`, already connecting; the call returns at once
   * and ioredis keeps reconnecting in the background. Connection errors are
   * logged with the role; the caller closes the connection.
   */
  open(role: RedisRole, options: RedisRoleOptions): RedisClient;
  /**
   * The broker's pub/sub subscriber: SUBSCRIBE on one connection, or on a
   * Cluster SSUBSCRIBE per master. Never resubscribes by itself (see
   * BusSubscriberEvents.up). Already connecting.
   */
  openSubscriber(role: RedisRole, events: BusSubscriberEvents): BusSubscriber;
}

/**
 * Which server `slot` is on, as `client` knows now: one name for a single
 * server; on a Cluster its master's `host:port`, or "unknown" before the
 * slot map is read. Commands for one server can share a pipeline.
 */
export function serverOfSlot(client: RedisClient, slot: number): string {
  return client instanceof Cluster ? (client.slots[slot]?.[0] ?? "unknown") : "single";
}

/** Subscriber connections: no queue, no resend, no auto-resubscribe (the broker re-subscribes). */
const SUBSCRIBER_OPTIONS: RedisRoleOptions = { offlineQueue: false, maxRetriesPerRequest: 1, autoResubscribe: false, resendUnanswered: false };
/** SSUBSCRIBE answered MOVED is never settled by ioredis: this bounds it. */
const SHARD_COMMAND_TIMEOUT_MS = 5000;
/** One connection's errors are logged at most this often (with a count of the ones left out). */
const ERROR_LOG_INTERVAL_MS = 5000;
/** How often a Cluster client re-reads the slot map besides on MOVED and lost nodes. */
const SLOTS_REFRESH_MS = 2000;

/**
 * `clientName` (the NODE_ID) names every connection `<clientName>/<role>`
 * (CLIENT SETNAME), so `CLIENT LIST` shows which node and role holds each
 * connection, and one node's connections can be told apart.
 */
export function redisConnections(topology: RedisTopology, log: Logger, clientName?: string): RedisConnections {
  const nodeOptions = (role: RedisRole, options: RedisRoleOptions): RedisOptions => ({
    lazyConnect: true,
    ...(clientName === undefined ? {} : { connectionName: `${clientName}/${role}` }),
    maxRetriesPerRequest: options.maxRetriesPerRequest,
    autoResubscribe: options.autoResubscribe ?? true,
    autoResendUnfulfilledCommands: options.resendUnanswered ?? true,
    ...(options.commandTimeoutMs === undefined ? {} : { commandTimeout: options.commandTimeoutMs }),
    ...(topology.kind !== "standalone" && topology.password !== undefined ? { password: topology.password } : {}),
  });

  const watch = <T extends RedisClient>(connection: T, role: RedisRole): T => {
    // A Redis that is down fails every reconnect attempt of every connection (on
    // a Cluster, of every node): one line per connection per interval says as much.
    let lastLoggedAt = Number.NEGATIVE_INFINITY;
    let suppressed = 0;
    connection.on("error", (err: Error) => {
      const now = Date.now();
      if (now - lastLoggedAt < ERROR_LOG_INTERVAL_MS) {
        suppressed++;
        return;
      }
      log.warn({ err, role, suppressed }, "redis connection error");
      lastLoggedAt = now;
      suppressed = 0;
    });
    connection.connect().catch((err: Error) => log.warn({ err, role }, "redis not reachable yet, retrying"));
    return connection;
  };

  const openServer = (role: RedisRole, options: RedisRoleOptions): Redis => {
    const common: RedisOptions = { ...nodeOptions(role, options), enableOfflineQueue: options.offlineQueue, enableAutoPipelining: options.autoPipelining ?? false };
    // lazyConnect, so the error listener is in place before the first attempt.
    if (topology.kind === "sentinel") {
      return new Redis({
        ...common,
        sentinels: topology.sentinels.map(({ host, port }) => ({ host, port })),
        name: topology.masterName,
        ...(topology.sentinelPassword === undefined ? {} : { sentinelPassword: topology.sentinelPassword }),
        // A master that was demoted while this connection stayed up (a manual
        // failover, a healed partition) refuses writes with READONLY: reconnect,
        // which asks the Sentinels again. The refused command was not run; it
        // fails, and its caller retries. (ioredis' failoverDetector would also
        // drop connections already on the new master, when the other Sentinels
        // announce the switch a second later.)
        reconnectOnError: (err) => (err.message.startsWith("READONLY") ? 1 : false),
      });
    }
    if (topology.kind === "standalone") return new Redis(topology.url, common);
    throw new Error("openServer is for standalone and Sentinel");
  };

  const openCluster = (role: RedisRole, options: RedisRoleOptions): Cluster => {
    if (topology.kind !== "cluster") throw new Error("openCluster is for a Cluster");
    const failFast = !options.offlineQueue;
    const clusterOptions: ClusterOptions = {
      lazyConnect: true,
      enableOfflineQueue: options.offlineQueue,
      redisOptions: nodeOptions(role, options),
      slotsRefreshInterval: SLOTS_REFRESH_MS,
      shardedSubscribers: options.shardedSubscribers ?? false,
      // ioredis would resend a command whose connection closed (it may have
      // run) and wait out a slot without master: fail-fast roles refuse both.
      ...(failFast ? { retryDelayOnFailover: 0, retryDelayOnClusterDown: 0 } : {}),
    };
    const cluster = new Cluster(
      topology.nodes.map(({ host, port }) => ({ host, port })),
      clusterOptions,
    );
    // A node that went away may have been a master: learn the new one now, not at the next interval.
    cluster.on("-node", () => cluster.refreshSlotsCache());
    return cluster;
  };

  return {
    mode: topology.kind,
    open(role, options) {
      return watch(topology.kind === "cluster" ? openCluster(role, options) : openServer(role, options), role);
    },
    openSubscriber(role, events) {
      if (topology.kind !== "cluster") return new SingleBusSubscriber(watch(openServer(role, SUBSCRIBER_OPTIONS), role), events);
      const shardOptions = { ...SUBSCRIBER_OPTIONS, commandTimeoutMs: SHARD_COMMAND_TIMEOUT_MS };
      return new ShardedBusSubscriber(
        watch(openCluster(role, SUBSCRIBER_OPTIONS), role),
        (address) => watch(new Redis({ ...nodeOptions(role, shardOptions), enableOfflineQueue: false, host: address.host, port: address.port }), role),
        events,
        log,
      );
    },
  };
}
