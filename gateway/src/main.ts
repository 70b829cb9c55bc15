/**
 * Composition root: config → wiring → listen → signals. With wiring/, the
 * only place that chooses implementations (Redis broker, JWT verifier,
 * Postgres stores) and reads the process environment. Each wiring step
 * returns its parts and its shutdown steps; the shutdown order is written
 * out once, at the end.
 */

import { pino, type Logger } from "pino";
import type { TemplatedApp } from "uWebSockets.js";
import { RedisBroker } from "./broker/redis-broker.js";
import { ConfigError, loadConfig, type GatewayConfig } from "./config.js";
import { LocalFanout } from "./fanout/local-fanout.js";
import type { NotReadyReason } from "./http/probes.js";
import { Publisher } from "./fanout/publisher.js";
import { RedisStreamIngest, type IngestPublisher } from "./ingest/redis-stream-ingest.js";
import { Shutdown, SHUTDOWN_WATCHDOG_MARGIN_MS, type ShutdownStep } from "./lifecycle/shutdown.js";
import { GatewayMetrics } from "./metrics/gateway-metrics.js";
import { memoryLimitBytes } from "./metrics/memory-limit.js";
import { MetricNamespaces } from "./metrics/metric-namespaces.js";
import { redisConnections, type RedisConnections } from "./redis/connections.js";
import { assertNativeUws, attachRoutes, closeListenSocket, createApp, listen, listeningPort } from "./server.js";
import { gatewayVersion } from "./version.js";
import { wireCluster } from "./wiring/cluster.js";
import { wireCommands } from "./wiring/commands.js";
import { wireDatabase } from "./wiring/database.js";
import { wireHistory, type HistoryWiring } from "./wiring/history.js";
import { wireLimits } from "./wiring/limits.js";
import { wireRoundClock } from "./wiring/round-clock.js";
import { wireTransports } from "./wiring/transports.js";

/** How long one ingest read blocks; bounds how late a stop or a takeover check runs. */
const INGEST_BLOCK_MS = 1000;

async function main(): Promise<void> {
  const config = configOrExit();
  const log = pino({ level: config.logLevel, base: { node: config.nodeId } });
  assertNativeUws();
  // The node's one shutdown flag, raised by the first shutdown step: from
  // then on nothing new starts (sockets, migrations, the round clock).
  const stopping = new AbortController();
  const metrics = new GatewayMetrics(config.nodeId, memoryLimitBytes(config.memoryLimitMb), new MetricNamespaces([...config.history.namespaces(), ...config.metricNamespaces]));
  metrics.clockEnabled(config.clock !== null);
  const redis = redisConnections(config.redis, log, config.nodeId);

  const { app, routes } = createApp();
  const fanout = new LocalFanout(metrics, log);
  const continuity = wireHistory(config, redis, fanout, metrics, log);
  const broker = startBroker(config, redis, continuity, metrics, log, stopping.signal);
  const { database, steps: databaseSteps } = wireDatabase(config, metrics, log, stopping.signal);
  const publisher = new Publisher(broker, metrics);
  const rounds = wireRoundClock(config, redis, continuity.policy, database, publisher, metrics, log, stopping.signal);

  // New sockets and publishes need Redis only; readiness also reports a
  // database outage, so operators see that bets cannot be written. A node
  // takes sockets only once it knows the revocations in force.
  const refusal = (): Extract<NotReadyReason, "draining" | "redis unavailable"> | null => {
    if (stopping.signal.aborted) return "draining";
    if (!broker.isReady() || !continuity.isReady() || !cluster.isReady()) return "redis unavailable";
    return null;
  };
  const notReadyReason = (): NotReadyReason | null => refusal() ?? database?.notReadyReason() ?? null;
  const cluster = wireCluster(config, redis, continuity.policy.keyspace, publisher, metrics, log, { ready: () => notReadyReason() === null, version: gatewayVersion() });

  const limits = wireLimits(config, redis, wireCommands(config, database, rounds.view), metrics, log);
  const transports = wireTransports({
    config,
    app,
    redis,
    subscriptions: continuity.sequencer.subscriptions(broker),
    fanout,
    metrics,
    log,
    refusal,
    commands: limits.commands,
    limits,
    snapshotFor: rounds.snapshotFor,
    continuity: continuity.resume,
    cluster,
  });
  attachRoutes(app, {
    ws: transports.ws,
    socketIo: transports.socketIo,
    probes: { nodeId: config.nodeId, notReadyReason, registry: metrics.registry, metrics, log },
    publishOptions: { publishKey: config.publishKey, maxBodyBytes: config.publishMaxBodyBytes, limits: { maxBatch: config.publishMaxBatch, maxDataDepth: config.maxJsonDepth } },
    publish: { publisher, metrics, log, refusal },
    site: { log },
    devToken: {
      enabled: config.env === "development",
      secret: typeof config.jwt.key === "string" ? config.jwt.key : null,
      issuer: config.jwt.issuer,
      audience: config.jwt.audience,
      log,
    },
    historyOptions: { publishKey: config.publishKey },
    history: { history: continuity.history, metrics, log },
    serverApiOptions: { publishKey: config.publishKey, revocationTtlMs: config.revocationTtlSeconds * 1000 },
    serverApi: { users: cluster.users, presence: cluster.presence, cluster: cluster.registry, metrics, log },
  });
  log.info({ routes }, "routes");
  const stopIngest = startIngest(config, redis, { publish: (requests) => publisher.publish(requests), isReady: () => broker.isReady() }, metrics, log);
  const stopListening = await listenOn(app, config, log);

  const shutdown = new Shutdown(
    [
      {
        name: "not ready",
        run: () => {
          stopping.abort();
          metrics.readinessChanged(false);
        },
      },
      stopListening,
      transports.steps.stopSweeps,
      // Before the broker closes: a batch in flight is published and acknowledged, not repeated.
      stopIngest,
      // Early, so another node takes the round over while this one drains.
      rounds.steps.handOver,
      // Before the sockets close, so queued bets are committed and acknowledged.
      databaseSteps.flushWriter,
      transports.steps.drainSockets,
      transports.steps.closeSocketIo,
      // After the sockets: their departures are written (and announced) first.
      cluster.steps.retirePresence,
      cluster.steps.retireNode,
      // After the sockets: their slots are given back one by one first.
      limits.steps.retireConnections,
      rounds.steps.recordPendingRounds,
      rounds.steps.stopNotices,
      databaseSteps.stopProbe,
      rounds.steps.closeLedger,
      { name: "close broker", run: () => broker.close() },
      cluster.steps.closeConnections,
      continuity.steps.closeHistory,
      transports.steps.closeSocketIoAdapter,
      databaseSteps.closePool,
      transports.steps.stopExpiryTimer,
    ],
    log,
    config.drainWindowMs + SHUTDOWN_WATCHDOG_MARGIN_MS,
  );
  exitOnSignals(shutdown, log);
}

function configOrExit(): GatewayConfig {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`gateway: invalid configuration: ${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}

/**
 * Deliveries from Redis go through the sequencer to the local fan-out;
 * readiness follows the broker, except while draining.
 */
function startBroker(config: GatewayConfig, redis: RedisConnections, continuity: HistoryWiring, metrics: GatewayMetrics, log: Logger, stopping: AbortSignal): RedisBroker {
  return RedisBroker.start({
    redis,
    policy: continuity.policy,
    waitReplicas: config.redisWaitReplicas,
    metrics,
    log,
    handler: {
      onDelivery: (delivery) => continuity.sequencer.onDelivery(delivery),
      onReadyChange: (ready) => {
        metrics.readinessChanged(ready && !stopping.aborted);
        log.info({ ready }, ready ? "redis ready" : "redis unavailable");
        // Whatever was published while the subscriber was away is in history.
        if (ready) void continuity.sequencer.catchUpAll();
      },
    },
  });
}

/** Backend feeds from the Redis stream, when INGEST_ENABLED; returns its shutdown step. */
function startIngest(config: GatewayConfig, redis: RedisConnections, publisher: IngestPublisher, metrics: GatewayMetrics, log: Logger): ShutdownStep {
  const ingest =
    config.ingest === null
      ? null
      : RedisStreamIngest.start({
          redis,
          prefix: config.redisPrefix,
          consumer: config.nodeId,
          publisher,
          maxBatch: config.ingest.batch,
          blockMs: INGEST_BLOCK_MS,
          claimIdleMs: config.ingest.claimIdleMs,
          maxAttempts: config.ingest.maxAttempts,
          maxDataBytes: config.publishMaxBodyBytes,
          maxDataDepth: config.maxJsonDepth,
          metrics,
          log,
        });
  return { name: "stop ingest", run: () => ingest?.stop() };
}

/** Opens the port; returns the step that closes it again. */
async function listenOn(app: TemplatedApp, config: GatewayConfig, log: Logger): Promise<ShutdownStep> {
  const listenSocket = await listen(app, config.host, config.port);
  log.info({ host: config.host, port: listeningPort(listenSocket), env: config.env }, "listening");
  return { name: "stop listening", run: () => closeListenSocket(listenSocket) };
}

function exitOnSignals(shutdown: Shutdown, log: Logger): void {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      void shutdown.run(signal).then(() => {
        log.info("shutdown complete");
        process.exit(0);
      });
    });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`gateway: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
