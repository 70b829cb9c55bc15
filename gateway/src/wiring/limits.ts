/**
 * The node's rate limits, built from config once: the per-connection rate
 * gates every session shares, the limits on new connections (per address on
 * this node, per user across the cluster in Redis), and the per-user bound
 * on commands in flight around the command runner.
 */

import type { Logger } from "pino";
import type { GatewayConfig } from "../config.js";
import { CommandsInFlight } from "../limits/commands-in-flight.js";
import { NodeConnectionLimits, type ConnectionLimits } from "../limits/connection-limits.js";
import { RateGate } from "../limits/rate-gate.js";
import type { RateLimitMetrics } from "../limits/rate-limit-metrics.js";
import { RedisConnectionQuota } from "../limits/user-connections.js";
import type { ShutdownStep } from "../lifecycle/shutdown.js";
import type { RedisConnections } from "../redis/connections.js";
import type { CommandRunner, SessionRates } from "../transport/client-session.js";

export interface LimitsWiring {
  readonly connections: ConnectionLimits;
  readonly rates: SessionRates;
  /** The command runner behind MAX_COMMANDS_IN_FLIGHT_PER_USER; undefined when the node takes no commands. */
  readonly commands: CommandRunner | undefined;
  readonly steps: {
    /** Tells the cluster this node's connections are gone; after the sockets have closed. */
    readonly retireConnections: ShutdownStep;
  };
}

export function wireLimits(config: GatewayConfig, redis: RedisConnections, commands: CommandRunner | undefined, metrics: RateLimitMetrics, log: Logger): LimitsWiring {
  const { limits } = config;
  const quota =
    limits.maxConnectionsPerUser === 0 ? null : new RedisConnectionQuota({ redis, prefix: config.redisPrefix, nodeId: config.nodeId, maxPerUser: limits.maxConnectionsPerUser, log });
  const addressGate = limits.connectsPerAddressPerSecond === 0 ? null : new RateGate(limits.connectsPerAddressPerSecond, limits.connectBurstPerAddress);
  return {
    connections: new NodeConnectionLimits(limits.trustedProxies, addressGate, quota, metrics),
    rates: { frames: new RateGate(limits.framesPerSecond, limits.frameBurst), subscribes: new RateGate(limits.subscribesPerSecond, limits.subscribeBurst) },
    commands: commands === undefined ? undefined : new CommandsInFlight(commands, limits.maxCommandsInFlightPerUser, metrics),
    steps: { retireConnections: { name: "retire connection quota", run: () => quota?.close() } },
  };
}
