/**
 * Where Redis is, as configured: one server, a master that Sentinels watch
 * and replace, or a Redis Cluster. Only redis/connections.ts turns this into
 * connections; everything else asks it for them.
 */

export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

export interface StandaloneTopology {
  readonly kind: "standalone";
  readonly url: string;
}

export interface SentinelTopology {
  readonly kind: "sentinel";
  readonly sentinels: readonly RedisAddress[];
  /** The name the Sentinels monitor the master under. */
  readonly masterName: string;
  readonly sentinelPassword?: string;
  /** Of the master and its replicas. */
  readonly password?: string;
}

export interface ClusterTopology {
  readonly kind: "cluster";
  /** Some of the Cluster's nodes; the rest is discovered from them. */
  readonly nodes: readonly RedisAddress[];
  readonly password?: string;
}

export type RedisTopology = StandaloneTopology | SentinelTopology | ClusterTopology;

/** `host:port`, with an IPv6 host in brackets. */
export function formatAddress(address: RedisAddress): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
