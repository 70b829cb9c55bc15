/**
 * Socket.IO's own cluster operations (room joins across nodes, server-side
 * emits) ride @socket.io/redis-adapter on two connections of their own.
 * Gateway publishes never go through it: they take the broker. On a Redis
 * Cluster the adapter is the sharded one (SPUBLISH/SSUBSCRIBE), in static
 * mode: one shard channel per namespace (and one per node for responses),
 * not one per room, since gateway channels never travel through it.
 */

import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import type { RedisConnections } from "./connections.js";

export interface SocketIoAdapterConnections {
  /** For `new Server({ adapter })`. */
  readonly adapter: ReturnType<typeof createAdapter> | ReturnType<typeof createShardedAdapter>;
  close(): Promise<void>;
}

/** Keys and channels under `<prefix>:sio`, beside the gateway's own. */
export function socketIoAdapter(connections: RedisConnections, prefix: string): SocketIoAdapterConnections {
  // ioredis's defaults: the adapter expects commands to wait out a short outage.
  const options = { offlineQueue: true, maxRetriesPerRequest: 20 };
  const sharded = connections.mode === "cluster";
  const pub = connections.open("socketio-adapter", options);
  const sub = connections.open("socketio-adapter", { ...options, shardedSubscribers: sharded });
  return {
    adapter: sharded ? createShardedAdapter(pub, sub, { channelPrefix: `${prefix}:sio`, subscriptionMode: "static" }) : createAdapter(pub, sub, { key: `${prefix}:sio` }),
    close: async () => void (await Promise.allSettled([pub.quit(), sub.quit()])),
  };
}
