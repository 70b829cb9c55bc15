/**
 * What the node shares with the rest of the cluster beyond messages: the
 * control channel (disconnect and revoke a user everywhere), the revocations
 * in force, presence, and the registry of nodes and channels behind
 * GET /v1/info and /v1/channels. Returns the parts the transports and the
 * server API need, and its shutdown steps.
 */

import type { Logger } from "pino";
import { CloseCodes } from "../../../shared/src/codes.js";
import type { PresenceResult, PublishRequest } from "../../../shared/src/protocol.js";
import { controlChannel, type RedisKeyspace } from "../broker/redis-keys.js";
import { ControlChannel, type ControlMessage } from "../cluster/control-channel.js";
import { LocalChannels, RedisNodeRegistry } from "../cluster/node-registry.js";
import { RedisPresence } from "../cluster/presence.js";
import { RedisRevocationStore, RevocationList, revocationOf } from "../cluster/revocations.js";
import type { GatewayConfig } from "../config.js";
import type { UserCommands } from "../http/server-api.js";
import type { ShutdownStep } from "../lifecycle/shutdown.js";
import type { GatewayMetrics } from "../metrics/gateway-metrics.js";
import type { RedisConnections } from "../redis/connections.js";
import type { ChannelActivity, ClientSession, PresenceReader } from "../transport/client-session.js";
import { SessionIndex } from "../transport/session-index.js";

/** A failed load of the revocations is tried again after this. */
const RELOAD_RETRY_MS = 1000;
const REVOCATION_SWEEP_MS = 60_000;
/** Bounds every call on the cluster-state connection: the server API answers 503 rather than hang. */
const STATE_COMMAND_TIMEOUT_MS = 3000;

export interface ClusterWiring {
  readonly revocations: RevocationList;
  readonly index: SessionIndex<ClientSession>;
  readonly activity: ChannelActivity;
  readonly presence: PresenceReader;
  readonly users: UserCommands;
  readonly registry: RedisNodeRegistry;
  /** Commands reach this node and the revocations are loaded: tokens can be checked. */
  isReady(): boolean;
  readonly steps: {
    /** After the sockets closed: writes their departure, then deletes this node's presence. */
    readonly retirePresence: ShutdownStep;
    readonly retireNode: ShutdownStep;
    readonly closeConnections: ShutdownStep;
  };
}

/** Publishes messages on the node's bus (join and leave notices). */
export interface NoticePublisher {
  publish(requests: readonly PublishRequest[]): Promise<unknown>;
}

const NO_PRESENCE: PresenceReader & { joined(): void; left(): void; close(): Promise<void> } = {
  enabledFor: () => false,
  read: (): Promise<PresenceResult> => Promise.reject(new Error("presence is not enabled")),
  joined: () => undefined,
  left: () => undefined,
  close: () => Promise.resolve(),
};

export function wireCluster(
  config: GatewayConfig,
  redis: RedisConnections,
  /** The node's one keyspace (single server or Cluster layout), from wireHistory. */
  keyspace: RedisKeyspace,
  publisher: NoticePublisher,
  metrics: GatewayMetrics,
  log: Logger,
  status: { readonly ready: () => boolean; readonly version: string },
): ClusterWiring {
  const state = redis.open("cluster-state", { offlineQueue: false, maxRetriesPerRequest: 1, commandTimeoutMs: STATE_COMMAND_TIMEOUT_MS });
  const subscriber = redis.open("control", { offlineQueue: false, maxRetriesPerRequest: 1, autoResubscribe: false });
  const index = new SessionIndex<ClientSession>();
  const revocations = new RevocationList();
  const channelName = controlChannel(config.redisPrefix);
  const store = new RedisRevocationStore(state, config.redisPrefix, channelName, config.revocationTtlSeconds * 1000);

  const kickRevoked = (user: string): void => {
    for (const session of index.sessionsOf(user)) {
      if (revocations.isRevoked(session.principal.sub, session.principal.issuedAt)) session.kick(CloseCodes.tokenRevoked, "token_revoked");
    }
  };
  const onMessage = (message: ControlMessage): void => {
    if (message.type === "disconnect") {
      const close = message.reason === undefined ? CloseCodes.disconnected : { ...CloseCodes.disconnected, reason: message.reason };
      for (const session of index.sessionsOf(message.user)) session.kick(close, "disconnected");
      return;
    }
    revocations.add(revocationOf(message));
    kickRevoked(message.user);
  };

  let loaded = false;
  let closing = false;
  const load = (): void => {
    store.load().then(
      (list) => {
        revocations.replace(list);
        loaded = true;
        for (const revocation of list) kickRevoked(revocation.user);
        log.info({ revocations: list.length }, "revocations loaded");
      },
      (err: unknown) => {
        log.warn({ err }, "loading revocations failed; retrying");
        if (!closing) setTimeout(() => control.isReady() && load(), RELOAD_RETRY_MS).unref();
      },
    );
  };
  const control = new ControlChannel(subscriber, state, channelName, { onMessage, onReady: load }, metrics, log);
  const sweep = setInterval(() => revocations.sweep(), REVOCATION_SWEEP_MS);
  sweep.unref();

  const namespaces = new Set(config.presence.namespaces);
  const presence =
    namespaces.size === 0
      ? NO_PRESENCE
      : new RedisPresence({
          redis: state,
          keyspace,
          nodeId: config.nodeId,
          namespaces,
          joinLeaveNamespaces: new Set(config.presence.joinLeaveNamespaces),
          maxMembers: config.presence.maxMembers,
          notices: {
            joined: (channel, users) => notify(publisher, channel, "presence_join", users, log),
            left: (channel, users) => notify(publisher, channel, "presence_leave", users, log),
          },
          metrics,
          log,
        });

  const channels = new LocalChannels();
  const registry = new RedisNodeRegistry({
    redis: state,
    prefix: config.redisPrefix,
    nodeId: config.nodeId,
    version: status.version,
    local: { ready: status.ready, connections: () => index.size },
    channels,
    log,
  });

  return {
    revocations,
    index,
    activity: {
      joined: (channel, user) => {
        channels.joined(channel);
        presence.joined(channel, user);
      },
      left: (channel, user) => {
        channels.left(channel);
        presence.left(channel, user);
      },
    },
    presence,
    users: {
      disconnect: (user, reason) => control.publish(reason === undefined ? { type: "disconnect", user } : { type: "disconnect", user, reason }),
      revoke: async (user, before) => {
        const stored = await store.revoke(user, before);
        // This node at once; the others when the announcement arrives, a moment later.
        revocations.add(stored);
        kickRevoked(user);
        return stored;
      },
    },
    registry,
    isReady: () => loaded && control.isReady(),
    steps: {
      retirePresence: { name: "retire presence", run: () => presence.close() },
      retireNode: { name: "retire from node registry", run: () => registry.close() },
      closeConnections: {
        name: "close control channel",
        run: async () => {
          closing = true;
          clearInterval(sweep);
          await control.close();
          await Promise.allSettled([state.quit()]);
          state.disconnect();
        },
      },
    },
  };
}

/** Join and leave notices, one message per user, in one batch. */
function notify(publisher: NoticePublisher, channel: string, event: "presence_join" | "presence_leave", users: readonly string[], log: Logger): void {
  publisher.publish(users.map((user) => ({ channel, event, data: { user } }))).catch((err: unknown) => {
    log.warn({ err, event, users: users.length }, "presence notice not published");
  });
}
