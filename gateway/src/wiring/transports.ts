/**
 * The client-facing endpoints: raw WebSocket at /ws and Socket.IO at
 * /socket.io/, sharing one verifier, one channel hub and one token-expiry
 * wheel, so a client gets the same channels and rules on either.
 */

import type { Logger } from "pino";
import type { TemplatedApp } from "uWebSockets.js";
import type { RaceSnapshot } from "../../../shared/src/race-events.js";
import { JwtVerifier, RevocationCheckingVerifier } from "../auth/verifier.js";
import type { Broker } from "../broker/broker.js";
import type { GatewayConfig } from "../config.js";
import type { LocalFanout } from "../fanout/local-fanout.js";
import { ChannelHub } from "../hub/channel-hub.js";
import type { ResumeSource } from "../history/resume.js";
import type { ShutdownStep } from "../lifecycle/shutdown.js";
import type { ClusterWiring } from "./cluster.js";
import type { LimitsWiring } from "./limits.js";
import type { GatewayMetrics } from "../metrics/gateway-metrics.js";
import type { RedisConnections } from "../redis/connections.js";
import { socketIoAdapter } from "../redis/socketio-adapter.js";
import type { CommandRunner } from "../transport/client-session.js";
import { ExpiryWheel } from "../transport/expiry-wheel.js";
import { SocketIoTransport } from "../transport/socketio-transport.js";
import { WsTransport } from "../transport/ws-transport.js";

/**
 * Every socket's buffer is read once per sweep; at 16k sockets a 250 ms sweep
 * was 37 % of the node's JavaScript time in the 100k profile. The 4x hard cap
 * in uWS still catches a burst between sweeps.
 */
const SLOW_CONSUMER_SWEEP_MS = 1000;

export interface TransportsDeps {
  readonly config: GatewayConfig;
  readonly app: TemplatedApp;
  readonly redis: RedisConnections;
  /** Channel subscriptions on the bus (through the sequencer, so each is tracked while held). */
  readonly subscriptions: Pick<Broker, "subscribe" | "unsubscribe">;
  readonly fanout: LocalFanout;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  /** Why new sockets are refused now (draining, Redis away), or null. */
  readonly refusal: () => string | null;
  readonly commands: CommandRunner | undefined;
  /** Connection limits and the per-connection rate gates. */
  readonly limits: Pick<LimitsWiring, "connections" | "rates">;
  /** History and this node's forwarded positions, for `since`. */
  readonly continuity: ResumeSource;
  /** The snapshot a subscribe reply carries for `channel`, or null for none. */
  readonly snapshotFor: (channel: string) => Promise<RaceSnapshot | null> | null;
  /** Revocations, the session index, channel activity and presence. */
  readonly cluster: Pick<ClusterWiring, "revocations" | "index" | "activity" | "presence">;
}

export interface TransportsWiring {
  readonly ws: WsTransport;
  readonly socketIo: SocketIoTransport;
  readonly steps: {
    readonly stopSweeps: ShutdownStep;
    /** Closes every socket with 1012, spread over DRAIN_WINDOW_MS. */
    readonly drainSockets: ShutdownStep;
    readonly closeSocketIo: ShutdownStep;
    readonly closeSocketIoAdapter: ShutdownStep;
    readonly stopExpiryTimer: ShutdownStep;
  };
}

export function wireTransports(deps: TransportsDeps): TransportsWiring {
  const { config, metrics, log, refusal } = deps;
  const verifier = new RevocationCheckingVerifier(new JwtVerifier(config.jwt), deps.cluster.revocations);
  const expiries = new ExpiryWheel();
  const session = {
    expiries,
    verifier,
    rates: deps.limits.rates,
    hub: new ChannelHub(deps.subscriptions, config.unsubscribeDelayMs),
    metrics,
    log,
    maxSubscriptions: config.maxSubscriptions,
    clockToleranceSeconds: config.jwt.clockToleranceSeconds,
    ...(deps.commands === undefined ? {} : { commands: deps.commands }),
    snapshotFor: deps.snapshotFor,
    continuity: deps.continuity,
    index: deps.cluster.index,
    revocations: deps.cluster.revocations,
    activity: deps.cluster.activity,
    presence: deps.cluster.presence,
  };
  const ws = new WsTransport(
    { nodeId: config.nodeId, maxFrameBytes: config.maxFrameBytes, maxJsonDepth: config.maxJsonDepth, idleTimeoutSeconds: config.idleTimeoutSeconds, maxBackpressureBytes: config.maxBackpressureBytes, compression: config.wsCompression },
    { verifier, metrics, log, refusal, session, limits: deps.limits.connections },
  );
  const adapter = socketIoAdapter(deps.redis, config.redisPrefix);
  const socketIo = new SocketIoTransport(
    { nodeId: config.nodeId, maxFrameBytes: config.maxFrameBytes, maxJsonDepth: config.maxJsonDepth, corsOrigins: config.socketIoCorsOrigins, maxBackpressureBytes: config.maxBackpressureBytes },
    { verifier, metrics, log, refusal, session, limits: deps.limits.connections, adapter: adapter.adapter },
  );
  // Raw sockets first, as they were subscribed first: the order deliveries reach each protocol.
  deps.fanout.addSink(ws.sink(deps.app));
  deps.fanout.addSink(socketIo.sink());
  const slowConsumerSweep = setInterval(() => {
    ws.sweepSlowConsumers();
    socketIo.sweepSlowConsumers();
  }, SLOW_CONSUMER_SWEEP_MS);

  return {
    ws,
    socketIo,
    steps: {
      stopSweeps: { name: "stop sweeps", run: () => clearInterval(slowConsumerSweep) },
      drainSockets: { name: "drain sockets", run: async () => void (await Promise.all([ws.drain(config.drainWindowMs), socketIo.drain(config.drainWindowMs)])) },
      closeSocketIo: { name: "close socket.io", run: () => socketIo.close() },
      closeSocketIoAdapter: { name: "close socket.io adapter", run: () => adapter.close() },
      stopExpiryTimer: { name: "stop expiry timer", run: () => expiries.stop() },
    },
  };
}
