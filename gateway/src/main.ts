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
import { assertNativeUws, attachRoutes, closeListenSocket, createApp, listen, listeningPort } from "./server.js";
import { WsTransport } from "./transport/ws-transport.js";

const SLOW_CONSUMER_SWEEP_MS = 250;

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

  const metrics = new GatewayMetrics(config.nodeId);
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

  const hub = new ChannelHub(broker, config.unsubscribeDelayMs);
  const ws = new WsTransport(
    {
      nodeId: config.nodeId,
      maxFrameBytes: config.maxFrameBytes,
      maxSubscriptions: config.maxSubscriptions,
      idleTimeoutSeconds: config.idleTimeoutSeconds,
      maxBackpressureBytes: config.maxBackpressureBytes,
      clockToleranceSeconds: config.jwt.clockToleranceSeconds,
    },
    { verifier: new JwtVerifier(config.jwt), hub, metrics, log, refusal: notReadyReason },
  );
  attachRoutes(app, {
    ws,
    probes: { nodeId: config.nodeId, notReadyReason, registry: metrics.registry, log },
    publishOptions: { publishKey: config.publishKey, maxBodyBytes: config.publishMaxBodyBytes, maxBatch: config.publishMaxBatch },
    publish: { publisher: new Publisher(broker, metrics), metrics, log, refusal: notReadyReason },
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
      { name: "drain sockets", run: () => ws.drain(config.drainWindowMs) },
      { name: "close broker", run: () => broker.close() },
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
