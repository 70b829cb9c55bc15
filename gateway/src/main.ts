/**
 * Composition root: config → wiring → listen → signals. The only place that
 * chooses implementations (Redis broker, JWT verifier) and reads the process
 * environment.
 */

import type pg from "pg";
import { pino, type Logger } from "pino";
import { CommandNames } from "../../shared/src/commands.js";
import { CommandRouter } from "./commands/command-router.js";
import { PlaceBetHandler } from "./commands/place-bet.js";
import { BatchingWriter } from "./store/batching-writer.js";
import { PgBetStore, type BetCommand, type BetOutcome } from "./store/bet-store.js";
import { isRetryablePgError } from "./store/pg-errors.js";
import { PgHealth } from "./store/pg-health.js";
import { JwtVerifier } from "./auth/verifier.js";
import { RedisBroker } from "./broker/redis-broker.js";
import { ConfigError, loadConfig, type GatewayConfig } from "./config.js";
import { LocalFanout, UwsTopicSink } from "./fanout/local-fanout.js";
import { Publisher } from "./fanout/publisher.js";
import { ChannelHub } from "./hub/channel-hub.js";
import { Shutdown, SHUTDOWN_WATCHDOG_MARGIN_MS } from "./lifecycle/shutdown.js";
import { GatewayMetrics } from "./metrics/gateway-metrics.js";
import { memoryLimitBytes } from "./metrics/memory-limit.js";
import { assertNativeUws, attachRoutes, closeListenSocket, createApp, listen, listeningPort } from "./server.js";
import { WsTransport } from "./transport/ws-transport.js";
import { ExpiryWheel } from "./transport/expiry-wheel.js";
import { SocketIoTransport } from "./transport/socketio-transport.js";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { RACE_CHANNEL, RoundAuthority } from "./clock/round-authority.js";
import { RoundLedger } from "./clock/round-ledger.js";
import { RoundRecorder } from "./clock/round-recorder.js";
import { RoundView } from "./clock/round-view.js";
import { migrateWhenReachable } from "./store/migrations.js";
import { createPool } from "./store/pg-pool.js";
import { attachDevTokenRoute } from "./http/dev-token.js";
import { attachStaticSite } from "./http/static-site.js";
import { RedisStreamIngest } from "./ingest/redis-stream-ingest.js";
import { PgRoundStore } from "./store/round-store.js";

/**
 * Every socket's buffer is read once per sweep; at 16k sockets a 250 ms sweep
 * was 37 % of the node's JavaScript time in the 100k profile. The 4x hard cap
 * in uWS still catches a burst between sweeps.
 */
const SLOW_CONSUMER_SWEEP_MS = 1000;
const PG_PROBE_MS = 2000;
/** SIGTERM waits this long for queued bets; later ones are answered "unavailable" (never acknowledged). */
const WRITER_STOP_TIMEOUT_MS = 5000;
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

interface Database {
  readonly pool: pg.Pool;
  readonly health: PgHealth;
  readonly writer: BatchingWriter<BetCommand, BetOutcome>;
  readonly commands: CommandRouter;
  readonly authority: RoundAuthority | null;
  readonly recorder: RoundRecorder | null;
  notReadyReason(): string | null;
}

/**
 * Everything that needs Postgres: migrations (retried until reachable), the
 * bet writer and its commands, and the round clock when enabled.
 */
function startDatabase(config: GatewayConfig, log: Logger, metrics: GatewayMetrics, ledger: RoundLedger, roundView: RoundView, isStopping: () => boolean): Database | null {
  const postgres = config.postgres;
  if (postgres === null) return null;
  const pool = createPool(postgres, log);
  metrics.watchPgPool(pool, postgres.poolMax);
  const betStore = new PgBetStore(pool, config.nodeId, metrics);
  const writer = new BatchingWriter<BetCommand, BetOutcome>({
    maxBatch: config.writer.maxBatch,
    maxDelayMs: config.writer.flushMs,
    capacity: config.writer.queueMax,
    concurrency: Math.min(config.writer.concurrency, postgres.poolMax),
    write: (items) => betStore.insertBatch(items),
    isRetryable: isRetryablePgError,
    metrics,
    onError: (err, attempt, items) => log.warn({ err: (err as Error).message, attempt, items }, "bet batch failed"),
  });
  const health = new PgHealth(pool, PG_PROBE_MS, log, (up) => {
    metrics.pgUp(up);
    if (up) writer.storeIsUp();
  });
  health.start();
  let migrated = false;
  const commands = new CommandRouter(
    new Map([
      [
        CommandNames.placeBet,
        new PlaceBetHandler({
          writer,
          currentRound: () => roundView.current(),
          ready: () => migrated,
          limits: { minAmount: config.writer.minBetAmount, maxAmount: config.writer.maxBetAmount },
        }),
      ],
    ]),
  );

  let authority: RoundAuthority | null = null;
  let recorder: RoundRecorder | null = null;
  if (config.clock !== null) {
    const store = new PgRoundStore(pool, metrics);
    recorder = new RoundRecorder(store, config.nodeId, log);
    authority = new RoundAuthority({ nodeId: config.nodeId, config: config.clock, ledger, store, recorder, metrics, log });
  }
  const clock = authority;
  void migrateWhenReachable(pool, postgres.schema, log, isStopping).then((done) => {
    migrated = done;
    if (done && !isStopping()) clock?.start();
  });

  return {
    pool,
    health,
    writer,
    commands,
    authority,
    recorder,
    notReadyReason: () => {
      if (!migrated) return "postgres schema not migrated yet";
      if (!health.isUp() || !writer.healthy()) return "postgres unavailable";
      return null;
    },
  };
}

async function main(): Promise<void> {
  const config = configOrExit();
  const log = pino({ level: config.logLevel, base: { node: config.nodeId } });
  assertNativeUws();

  const metrics = new GatewayMetrics(config.nodeId, memoryLimitBytes(config.memoryLimitMb));
  metrics.clockEnabled(config.clock !== null);
  const app = createApp();
  const fanout = new LocalFanout(metrics, log);
  fanout.addSink(new UwsTopicSink(app));
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

  // New sockets and publishes need Redis only; readiness also reports a
  // database outage, so operators see that bets cannot be written.
  const refusal = (): string | null => {
    if (draining) return "draining";
    if (!broker.isReady()) return "redis unavailable";
    return null;
  };
  const notReadyReason = (): string | null => refusal() ?? database?.notReadyReason() ?? null;

  // Every node can answer `race` snapshots; only CLOCK_ENABLED nodes compete to drive rounds.
  const ledger = new RoundLedger({ url: config.redisUrl, prefix: config.redisPrefix, channelStateTtlSeconds: config.channelStateTtlSeconds, log });
  const roundView = new RoundView(ledger);
  let stopping = false;
  const database = startDatabase(config, log, metrics, ledger, roundView, () => stopping);

  const hub = new ChannelHub(broker, config.unsubscribeDelayMs);
  const verifier = new JwtVerifier(config.jwt);
  const publisher = new Publisher(broker, metrics);
  const expiries = new ExpiryWheel();
  const sessionDeps = {
    expiries,
    verifier,
    hub,
    metrics,
    log,
    maxSubscriptions: config.maxSubscriptions,
    clockToleranceSeconds: config.jwt.clockToleranceSeconds,
    ...(database === null ? {} : { commands: database.commands }),
    snapshotFor: (channel: string) => (channel === RACE_CHANNEL ? roundView.snapshot() : null),
  };
  const ws = new WsTransport(
    { nodeId: config.nodeId, maxFrameBytes: config.maxFrameBytes, maxJsonDepth: config.maxJsonDepth, idleTimeoutSeconds: config.idleTimeoutSeconds, maxBackpressureBytes: config.maxBackpressureBytes },
    { verifier, metrics, log, refusal, session: sessionDeps },
  );
  // Socket.IO's own cluster operations ride its Redis adapter on two more
  // connections; gateway publishes never go through it.
  const adapterPub = new Redis(config.redisUrl);
  const adapterSub = adapterPub.duplicate();
  for (const connection of [adapterPub, adapterSub]) {
    connection.on("error", (err: Error) => log.warn({ err: err.message, role: "socketio-adapter" }, "redis connection error"));
  }
  const socketIo = new SocketIoTransport(
    { nodeId: config.nodeId, maxFrameBytes: config.maxFrameBytes, maxJsonDepth: config.maxJsonDepth, corsOrigins: config.socketIoCorsOrigins },
    { verifier, metrics, log, refusal, session: sessionDeps, adapter: createAdapter(adapterPub, adapterSub, { key: `${config.redisPrefix}:sio` }) },
  );
  fanout.addSink(socketIo.sink());

  attachRoutes(app, {
    ws,
    socketIo,
    probes: { nodeId: config.nodeId, notReadyReason, registry: metrics.registry, log },
    publishOptions: { publishKey: config.publishKey, maxBodyBytes: config.publishMaxBodyBytes, limits: { maxBatch: config.publishMaxBatch, maxDataDepth: config.maxJsonDepth } },
    publish: { publisher, metrics, log, refusal },
  });

  // The live page at / and, in development only, GET /v1/dev/token for it.
  attachStaticSite(app, { log });
  attachDevTokenRoute(app, {
    enabled: config.env === "development",
    secret: typeof config.jwt.key === "string" ? config.jwt.key : null,
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    log,
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
          maxDataDepth: config.maxJsonDepth,
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
          await database?.authority?.stop();
        },
      },
      // Before the sockets close, so queued bets are committed and acknowledged.
      { name: "flush bet writer", run: () => database?.writer.stop(WRITER_STOP_TIMEOUT_MS) },
      { name: "drain sockets", run: async () => void (await Promise.all([ws.drain(config.drainWindowMs), socketIo.drain(config.drainWindowMs)])) },
      { name: "close socket.io", run: () => socketIo.close() },
      { name: "record pending rounds", run: () => database?.recorder?.stop(2000) },
      { name: "stop postgres probe", run: () => database?.health.stop() },
      { name: "close clock ledger", run: () => ledger.close() },
      { name: "close broker", run: () => broker.close() },
      { name: "close socket.io adapter", run: async () => void (await Promise.allSettled([adapterPub.quit(), adapterSub.quit()])) },
      { name: "close postgres pool", run: () => database?.pool.end() },
      { name: "stop expiry timer", run: () => expiries.stop() },
      { name: "stop metrics", run: () => metrics.stop() },
    ],
    log,
    config.drainWindowMs + SHUTDOWN_WATCHDOG_MARGIN_MS,
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
