/**
 * How much history each channel keeps, by channel namespace (the part of the
 * name before the first `:`). A reconnecting client can resume a channel only
 * while every message it missed is still held, so the bounds say how long a
 * disconnection each kind of channel survives:
 *   race       a tick every 500 ms; a screen that was away longer than a few
 *              seconds reloads from the snapshot anyway.
 *   forecasts  a few updates a minute per asset; minutes of history.
 *   user       rare, personal, and each one matters (a settled bet): the most.
 * Every other namespace (claim-granted ones) takes the `*` entry.
 */

import { channelNamespace } from "../../../shared/src/channels.js";

export interface HistoryLimits {
  /** Most messages held per channel; 0 keeps none (resume works only with nothing missed). */
  readonly size: number;
  /** The history disappears this long after the channel's last publish. */
  readonly ttlSeconds: number;
}

export const DEFAULT_CHANNEL_HISTORY = "race=20/30,forecasts=100/300,user=200/900,*=100/300";

/** Bounds that keep one channel's history a small, fast Redis stream. */
const MAX_SIZE = 10_000;
const MAX_TTL_SECONDS = 7 * 86_400;

export class HistoryPolicyError extends Error {
  override readonly name = "HistoryPolicyError";
}

export class HistoryPolicy {
  private constructor(
    private readonly byNamespace: ReadonlyMap<string, HistoryLimits>,
    private readonly fallback: HistoryLimits,
  ) {}

  /**
   * Parses `namespace=size/ttl_seconds,…` with a `*` entry for every other
   * namespace, e.g. `race=20/30,user=200/900,*=100/300`.
   */
  static parse(text: string): HistoryPolicy {
    const byNamespace = new Map<string, HistoryLimits>();
    let fallback: HistoryLimits | null = null;
    for (const item of text.split(",").map((part) => part.trim()).filter((part) => part.length > 0)) {
      const match = /^([A-Za-z0-9_\-.@|=+/]+|\*)=(\d+)\/(\d+)$/.exec(item);
      if (match === null) throw new HistoryPolicyError(`"${item}" is not namespace=size/ttl_seconds`);
      const [, namespace = "", sizeText = "", ttlText = ""] = match;
      const limits = { size: Number(sizeText), ttlSeconds: Number(ttlText) };
      if (limits.size > MAX_SIZE) throw new HistoryPolicyError(`"${item}": size at most ${MAX_SIZE}`);
      if (limits.ttlSeconds > MAX_TTL_SECONDS) throw new HistoryPolicyError(`"${item}": ttl at most ${MAX_TTL_SECONDS} s`);
      if (limits.size > 0 && limits.ttlSeconds === 0) throw new HistoryPolicyError(`"${item}": a history needs a ttl above 0`);
      if (namespace === "*") fallback = limits;
      else if (byNamespace.has(namespace)) throw new HistoryPolicyError(`namespace "${namespace}" given twice`);
      else byNamespace.set(namespace, limits);
    }
    if (fallback === null) throw new HistoryPolicyError("needs a `*=size/ttl_seconds` entry for other namespaces");
    return new HistoryPolicy(byNamespace, fallback);
  }

  limitsFor(channel: string): HistoryLimits {
    return this.byNamespace.get(channelNamespace(channel)) ?? this.fallback;
  }

  /** The namespaces named explicitly (not `*`). */
  namespaces(): string[] {
    return [...this.byNamespace.keys()];
  }

  /** The longest history any channel keeps; channel state must outlive it. */
  longestTtlSeconds(): number {
    return Math.max(this.fallback.ttlSeconds, ...[...this.byNamespace.values()].map((limits) => limits.ttlSeconds));
  }
}
