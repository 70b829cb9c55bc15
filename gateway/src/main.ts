/**
 * Composition root: config → wiring → listen → signals. The only place that
 * chooses implementations (Redis broker, JWT verifier) and reads the process
 * environment.
 */

import { pino } from "pino";
import { JwtVerifier } from "./auth/verifier.js";
import { RedisBroker } from "./broker/redis-broker.js";
import { ConfigError, loadConfig, type GatewayConfig } from "./config.js";
import { LocalFanout } from "./fanout/local-fanout.js";
import { Publisher } from "./fanout/publisher.js";
import { ChannelHub } from "./hub/channel-hub.js";
import { Shutdown } from "./lifecycle/shutdown.js";
import { GatewayMetrics } from "./metrics/gateway-metrics.js";
import { memoryLimitBytes } from "./metrics/memory-limit.js";
import { assertNativeUws, attachRoutes, closeListenSocket, createApp, listen, listeningPort } from "./server.js";
import { WsTransport } from "./transport/ws-transport.js";
import { RACE_CHANNEL, RoundAuthority } from "./clock/round-authority.js";
import { RoundLedger } from "./clock/round-ledger.js";
import { RoundRecorder } from "./clock/round-recorder.js";
import { RoundView } from "./clock/round-view.js";
import { migrateWhenReachable } from "./store/migrations.js";
import { createPool } from "./store/pg-pool.js";
import { RedisStreamIngest } from "./ingest/redis-stream-ingest.js";
import { PgRoundStore } from "./store/round-store.js";

const SLOW_CONSUMER_SWEEP_MS = 250;
/** How long one ingest read blocks; bounds how late a stop or a takeover check runs. */
const INGEST_BLOCK_MS = 1000;

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

async function main(): Promise<void> {
  const config = configOrExit();
  const log = pino({ level: config.logLevel, base: { node: config.nodeId } });
  assertNativeUws();

  const metrics = new GatewayMetrics(config.nodeId, memoryLimitBytes(config.memoryLimitMb));
  const app = createApp();
  const fanout = new LocalFanout(app, metrics);
  let draining = false;

  const broker = RedisBroker.start({
    url: config.redisUrl,
    prefix: config.redisPrefix,
    channelStateTtlSeconds: config.channelStateTtlSeconds,
    metrics,
    log,
    handler: {
      onDelivery: (delivery) => fanout.deliver(delivery),
      onReadyChange: (ready) => {
        metrics.readinessChanged(ready && !draining);
        log.info({ ready }, ready ? "redis ready" : "redis unavailable");
      },
    },
  });

  const notReadyReason = (): string | null => {
    if (draining) return "draining";
    if (!broker.isReady()) return "redis unavailable";
    return null;
  };

  // Every node can answer `race` snapshots; only CLOCK_ENABLED nodes compete to drive rounds.
  const ledger = new RoundLedger({ url: config.redisUrl, prefix: config.redisPrefix, channelStateTtlSeconds: config.channelStateTtlSeconds, log });
  const roundView = new RoundView(ledger);
  let stopping = false;
  const pool = config.postgres === null ? null : createPool(config.postgres, log);
  if (pool !== null && config.postgres !== null) metrics.watchPgPool(pool, config.postgres.poolMax);
  let authority: RoundAuthority | null = null;
  let recorder: RoundRecorder | null = null;
  if (config.clock !== null && config.postgres !== null && pool !== null) {
    const store = new PgRoundStore(pool);
    recorder = new RoundRecorder(store, config.nodeId, log);
    const clockAuthority = new RoundAuthority({ nodeId: config.nodeId, config: config.clock, ledger, store, recorder, metrics, log });
    authority = clockAuthority;
    void migrateWhenReachable(pool, config.postgres.schema, log, () => stopping).then((migrated) => {
      if (migrated && !stopping) clockAuthority.start();
    });
  }

  const hub = new ChannelHub(broker, config.unsubscribeDelayMs);
  const publisher = new Publisher(broker, metrics);
  const ws = new WsTransport(
    {
      nodeId: config.nodeId,
      maxFrameBytes: config.maxFrameBytes,
      maxSubscriptions: config.maxSubscriptions,
      idleTimeoutSeconds: config.idleTimeoutSeconds,
      maxBackpressureBytes: config.maxBackpressureBytes,
      clockToleranceSeconds: config.jwt.clockToleranceSeconds,
    },
    {
      verifier: new JwtVerifier(config.jwt),
      hub,
      metrics,
      log,
      refusal: notReadyReason,
      snapshotFor: (channel) => (channel === RACE_CHANNEL ? roundView.snapshot() : null),
    },
  );
  attachRoutes(app, {
    ws,
    probes: { nodeId: config.nodeId, notReadyReason, registry: metrics.registry, log },
    publishOptions: { publishKey: config.publishKey, maxBodyBytes: config.publishMaxBodyBytes, maxBatch: config.publishMaxBatch },
    publish: { publisher, metrics, log, refusal: notReadyReason },
  });

  const ingest =
    config.ingest === null
      ? null
      : RedisStreamIngest.start({
          url: config.redisUrl,
          prefix: config.redisPrefix,
          consumer: config.nodeId,
          publisher,
          maxBatch: config.ingest.batch,
          blockMs: INGEST_BLOCK_MS,
          claimIdleMs: config.ingest.claimIdleMs,
          maxDataBytes: config.publishMaxBodyBytes,
          metrics,
          log,
        });

  const slowConsumerSweep = setInterval(() => ws.sweepSlowConsumers(), SLOW_CONSUMER_SWEEP_MS);

  const listenSocket = await listen(app, config.host, config.port);
  log.info({ host: config.host, port: listeningPort(listenSocket), env: config.env }, "listening");

  const shutdown = new Shutdown(
    [
      {
        name: "not ready",
        run: () => {
          draining = true;
          metrics.readinessChanged(false);
        },
      },
      { name: "stop listening", run: () => closeListenSocket(listenSocket) },
      { name: "stop sweeps", run: () => clearInterval(slowConsumerSweep) },
      // Before the broker closes: a batch in flight is published and acknowledged, not repeated.
      { name: "stop ingest", run: () => ingest?.stop() },
      {
        // Early, so another node takes the round over while this one drains.
        name: "hand over the round clock",
        run: async () => {
          stopping = true;
          await authority?.stop();
        },
      },
      { name: "drain sockets", run: () => ws.drain(config.drainWindowMs) },
      { name: "record pending rounds", run: () => recorder?.stop(2000) },
      { name: "close clock ledger", run: () => ledger.close() },
      { name: "close broker", run: () => broker.close() },
      { name: "close postgres pool", run: () => pool?.end() },
      { name: "stop metrics", run: () => metrics.stop() },
    ],
    log,
    config.drainWindowMs + 15_000,
  );
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
