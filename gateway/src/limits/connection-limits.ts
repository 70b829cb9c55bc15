/**
 * The limits on new connections, as the transports see them: the client
 * address's rate on this node (CONNECTS_PER_ADDRESS_PER_S) and the user's
 * connections across the cluster (MAX_CONNECTIONS_PER_USER).
 */

import { AddressRates } from "./address-rates.js";
import { rateKey, type TrustedProxies } from "./client-address.js";
import type { RateGate } from "./rate-gate.js";
import type { RateLimitMetrics } from "./rate-limit-metrics.js";
import type { ConnectionQuota } from "./user-connections.js";
import type { Clock } from "../time/clock.js";

export interface ConnectionLimits {
  /**
   * Counts one new connection from `peer` (the TCP peer's address as the
   * server reports it) with `forwardedFor` (X-Forwarded-For, "" when absent,
   * read only when the peer is a trusted proxy). False when the client's
   * address is over its rate: refuse with `connect_rate_limited`.
   */
  admitAddress(peer: string, forwardedFor: string): boolean;
  /** The user's connection slots across the cluster; null when MAX_CONNECTIONS_PER_USER is 0. */
  readonly perUser: ConnectionQuota | null;
}

export class NodeConnectionLimits implements ConnectionLimits {
  private readonly rates: AddressRates | null;

  constructor(
    private readonly proxies: TrustedProxies,
    /** Null: no per-address limit. */
    addressGate: RateGate | null,
    readonly perUser: ConnectionQuota | null,
    private readonly metrics: RateLimitMetrics,
    private readonly clock: Clock = Date,
  ) {
    this.rates = addressGate === null ? null : new AddressRates(addressGate);
  }

  admitAddress(peer: string, forwardedFor: string): boolean {
    if (this.rates === null) return true;
    const address = this.proxies.clientAddress(peer, forwardedFor);
    // A TCP peer always has an address; were it unreadable, one bucket holds all such.
    const key = address === null ? "unknown" : rateKey(address);
    if (this.rates.admit(key, this.clock.now())) return true;
    this.metrics.rateLimited("address_connects");
    return false;
  }
}
