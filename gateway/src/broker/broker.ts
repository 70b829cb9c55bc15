/**
 * The seam between a node and the cluster's message bus. The broker knows
 * nothing of sockets: it hands every delivery for a channel this node
 * subscribed to back through `BrokerHandler`.
 */

export interface Publication {
  readonly channel: string;
  /**
   * A publish repeated with the same key on the same channel within the
   * idempotency window publishes nothing and returns the first one's outcome.
   */
  readonly idempotencyKey?: string;
  /** The delivery frame up to `"offset":`, built once by encodeFrameHead(). */
  readonly frameHead: string;
  /** Publish time at the accepting node, ms since the epoch. */
  readonly ts: number;
}

export interface PublishOutcome {
  readonly offset: number;
  readonly epoch: string;
  /** True when an earlier publish with the same idempotency key already took this offset. */
  readonly duplicate: boolean;
}

export interface Delivery {
  readonly channel: string;
  /** The complete client frame; forwarded to sockets byte for byte. */
  readonly frame: Buffer;
  readonly offset: number;
  readonly epoch: string;
  /** Publish time at the accepting node, ms since the epoch. */
  readonly ts: number;
}

export interface BrokerHandler {
  /**
   * One well-formed delivery, in offset order per channel. Whatever it throws
   * is the handler's failure for that delivery alone: the broker counts and
   * logs it and goes on with the next one.
   */
  onDelivery(delivery: Delivery): void;
  /** Connectivity changed; `ready` means publish and subscribe work now. */
  onReadyChange(ready: boolean): void;
}

/**
 * A publish that failed after some of it may have taken effect: a batch
 * spanning Redis Cluster slots of which some were published, or a publish
 * that ran but was not confirmed by enough replicas. Retrying with the same
 * idempotency keys completes it without publishing anything twice.
 */
export class PublishUncertainError extends Error {
  override readonly name = "PublishUncertainError";
}

export interface Broker {
  /**
   * Assigns each publication the next offset of its channel and delivers it to
   * every node subscribed to that channel, at most once per node, in offset
   * order per channel. A batch is applied atomically, all or none, on one
   * Redis; on a Redis Cluster atomically per slot (all of a channel's
   * publications share one). Rejects when the bus is unreachable; then
   * nothing of the batch was delivered, unless it rejects with
   * PublishUncertainError. A publish whose reply was lost may have run either
   * way: only idempotency keys make a retry safe.
   */
  publish(publications: readonly Publication[]): Promise<PublishOutcome[]>;
  /**
   * Resolves once deliveries for `channel` reach this node. Idempotent. The
   * subscription survives reconnects of the bus until `unsubscribe`.
   * Rejects while the bus is unreachable.
   */
  subscribe(channel: string): Promise<void>;
  /** Stops deliveries for `channel`. Never rejects: a lost connection drops them anyway. */
  unsubscribe(channel: string): Promise<void>;
  isReady(): boolean;
  close(): Promise<void>;
}
