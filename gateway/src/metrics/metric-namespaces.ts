/**
 * The channel namespaces metric labels may carry. Channel names come from
 * publishers and token grants, which can invent any namespace, and every
 * label value is a time series kept forever by Prometheus: so each channel
 * reaches a metric through label() here, which keeps a known namespace and
 * turns everything else into `other`. The known set is the built-in
 * channels' (race, forecasts, user), the namespaces CHANNEL_HISTORY names,
 * and METRIC_NAMESPACES.
 */

import { channelNamespace, PUBLIC_CHANNELS, USER_CHANNEL_PREFIX } from "../../../shared/src/channels.js";

export const OTHER_NAMESPACE = "other";

/** The namespaces every node labels by, whatever its configuration. */
export const BUILT_IN_METRIC_NAMESPACES: readonly string[] = [...PUBLIC_CHANNELS, channelNamespace(USER_CHANNEL_PREFIX)];

export class MetricNamespaces {
  private readonly known: ReadonlySet<string>;

  /** `configured`: namespaces an operator expects (CHANNEL_HISTORY's, METRIC_NAMESPACES); added to the built-in ones. */
  constructor(configured: Iterable<string> = []) {
    this.known = new Set([...BUILT_IN_METRIC_NAMESPACES, ...configured]);
  }

  /** The `namespace` label for `channel`: its namespace when known, else `other`. */
  label(channel: string): string {
    const namespace = channelNamespace(channel);
    return this.known.has(namespace) ? namespace : OTHER_NAMESPACE;
  }

  /** Every value label() can return, to start counters at zero. */
  values(): string[] {
    return [...this.known, OTHER_NAMESPACE];
  }
}
