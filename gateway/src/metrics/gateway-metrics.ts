/**
 * The node's Prometheus metrics, on a registry of their own, recorded through
 * methods named after what happened. Labels are the node and low-cardinality
 * values only (transport, reason, channel namespace): never a raw channel or
 * user id. Modules hand in channel names; the `namespace` label comes from
 * MetricNamespaces alone, so it stays within a known set plus `other`.
 */

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { AUTH_FAILURE_REASONS } from "../auth/verifier.js";
import type { BrokerMetrics, DroppedMessageReason } from "../broker/redis-broker.js";
import type { GapReason, SequencerMetrics } from "../history/channel-sequencer.js";
import type { ClockMetrics } from "../clock/round-authority.js";
import type { SettlementMetrics } from "../clock/settlement-notifier.js";
import { INGEST_REJECT_REASONS, type IngestMetrics, type IngestRejectReason } from "../ingest/ingest-metrics.js";
import type { FanoutMetrics } from "../fanout/local-fanout.js";
import { RATE_LIMITS, type RateLimit, type RateLimitMetrics } from "../limits/rate-limit-metrics.js";
import type { PublisherMetrics } from "../fanout/publisher.js";
import { NOT_READY_REASONS, type NotReadyReason, type ReadinessMetrics } from "../http/probes.js";
import type { PublishApiMetrics } from "../http/publish-api.js";
import type { WriterMetrics } from "../store/batching-writer.js";
import { MetricNamespaces } from "./metric-namespaces.js";
import type { QueryTimer } from "../store/bet-store.js";
import type { PoolState } from "../store/pg-pool.js";
import type { SessionMetrics } from "../transport/client-session.js";
import type { TransportMetrics } from "../transport/transport-deps.js";

export type Transport = "ws" | "socketio";

/** 1 ms … ~1 s, dense where fan-out latency normally lives. */
export const FANOUT_LATENCY_BUCKETS = [
  0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1,
];

/**
 * Implements the metrics interface each module declares for itself; only the
 * composition root (main.ts and wiring/) imports this class.
 */
export class GatewayMetrics
  implements
    BrokerMetrics,
    ClockMetrics,
    SettlementMetrics,
    IngestMetrics,
    WriterMetrics,
    QueryTimer,
    TransportMetrics,
    SessionMetrics,
    FanoutMetrics,
    PublisherMetrics,
    PublishApiMetrics,
    SequencerMetrics,
    RateLimitMetrics,
    ReadinessMetrics
{
  readonly registry = new Registry();
  private readonly poolSource: { current: PoolState | null } = { current: null };

  private readonly connections: Gauge<"transport">;
  private readonly connects: Counter<"transport">;
  private readonly disconnects: Counter<"transport" | "reason">;
  private readonly authFailures: Counter<"reason">;
  private readonly subscriptions: Gauge<"namespace">;
  private readonly subscriptionRequests: Counter<"result">;
  private readonly messagesIn: Counter<"transport" | "type">;
  private readonly messagesOut: Counter<"namespace">;
  private readonly bytesOut: Counter<"namespace">;
  private readonly clientErrors: Counter<"code">;
  private readonly publishes: Counter<"namespace">;
  private readonly publishFailures: Counter<"reason">;
  private readonly frameEncodes: Counter<"protocol">;
  private readonly broadcasts: Counter<"namespace">;
  private readonly fanoutLatency: Histogram<"namespace">;
  private readonly broadcastDuration: Histogram;
  private readonly sendDrops: Counter<"kind">;
  private readonly redisUp: Gauge<"role">;
  private readonly redisMessages: Counter;
  private readonly redisDropped: Counter<"reason">;
  private readonly deliveryFailures: Counter<"sink">;
  private readonly historyGaps: Counter<"namespace">;
  private readonly historyRepairs: Counter<"namespace">;
  private readonly historyRepairedMessages: Counter<"namespace">;
  private readonly historyUnrecoverable: Counter<"namespace" | "reason">;
  private readonly historyDuplicates: Counter<"namespace">;
  private readonly redisErrors: Counter<"command">;
  private readonly redisResubscribes: Counter;
  private readonly ready: Gauge;
  private readonly notReadyReason: Gauge;
  private readonly clockLeader: Gauge;
  private readonly clockEnabledGauge: Gauge;
  private readonly upgradeRefusals: Counter<"transport" | "reason">;
  private readonly clockEvents: Counter<"event">;
  private readonly clockRoundId: Gauge;
  private readonly httpRequests: Counter<"route" | "status">;
  private readonly pgPoolMax: Gauge;
  private readonly pgUpGauge: Gauge;
  private readonly pgClockSkewGauge: Gauge;
  private readonly settlementNotices: Counter<"status">;
  private readonly settlementFailures: Counter;
  private readonly pgQueryDuration: Histogram<"operation">;
  private readonly writerQueueDepth: Gauge;
  private readonly writerQueueCapacity: Gauge;
  private readonly writerBatchSize: Histogram;
  private readonly writerFlushDuration: Histogram;
  private readonly writerFailures: Counter;
  private readonly writerRows: Counter;
  private readonly writerRejected: Counter<"reason">;
  private readonly ingestPublished: Counter;
  private readonly ingestRejections: Counter<"reason">;
  private readonly ingestFailures: Counter;
  private readonly ingestClaims: Counter;
  private readonly rateLimits: Counter<"limit">;
  private readonly controlMessages: Counter<"type">;
  private readonly presenceWriteFailures: Counter;

  constructor(
    nodeId: string,
    memoryLimitBytes: number,
    private readonly namespaces: MetricNamespaces = new MetricNamespaces(),
  ) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node: nodeId });
    // process_* and nodejs_*, event-loop lag among them (nodejs_eventloop_lag_p99_seconds, reset at every scrape).
    collectDefaultMetrics({ register: this.registry });

    this.connections = new Gauge({ name: "gateway_connections", help: "Open client connections.", labelNames: ["transport"], registers });
    this.connects = new Counter({ name: "gateway_connects_total", help: "Accepted client connections.", labelNames: ["transport"], registers });
    this.disconnects = new Counter({ name: "gateway_disconnects_total", help: "Closed client connections by reason.", labelNames: ["transport", "reason"], registers });
    this.authFailures = new Counter({ name: "gateway_auth_failures_total", help: "Refused tokens by reason.", labelNames: ["reason"], registers });
    this.subscriptions = new Gauge({ name: "gateway_subscriptions", help: "Socket subscriptions by channel namespace.", labelNames: ["namespace"], registers });
    this.subscriptionRequests = new Counter({ name: "gateway_subscribe_requests_total", help: "Subscribe requests by result.", labelNames: ["result"], registers });
    this.messagesIn = new Counter({ name: "gateway_messages_in_total", help: "Client frames received.", labelNames: ["transport", "type"], registers });
    this.messagesOut = new Counter({ name: "gateway_messages_out_total", help: "Message frames handed to sockets.", labelNames: ["namespace"], registers });
    this.bytesOut = new Counter({ name: "gateway_bytes_out_total", help: "Bytes of message frames handed to sockets.", labelNames: ["namespace"], registers });
    this.clientErrors = new Counter({ name: "gateway_client_errors_total", help: "Error replies and error frames sent, by code.", labelNames: ["code"], registers });
    this.publishes = new Counter({ name: "gateway_publishes_total", help: "Messages accepted for publishing on this node.", labelNames: ["namespace"], registers });
    this.publishFailures = new Counter({ name: "gateway_publish_failures_total", help: "Publish requests refused or failed, by reason.", labelNames: ["reason"], registers });
    this.frameEncodes = new Counter({
      name: "gateway_broadcast_encodes_total",
      help: "Message frames serialized on this node: one per publish for raw sockets, one per delivery for Socket.IO rooms, never one per recipient.",
      labelNames: ["protocol"],
      registers,
    });
    this.broadcasts = new Counter({ name: "gateway_broadcasts_total", help: "Deliveries from the bus fanned out to local sockets.", labelNames: ["namespace"], registers });
    this.fanoutLatency = new Histogram({
      name: "gateway_fanout_latency_seconds",
      help: "Publish time (the message's ts) until this node handed the message to its sockets.",
      labelNames: ["namespace"],
      buckets: FANOUT_LATENCY_BUCKETS,
      registers,
    });
    this.broadcastDuration = new Histogram({
      name: "gateway_broadcast_duration_seconds",
      help: "Time this node spent handing one message to all its local sockets.",
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    });
    this.sendDrops = new Counter({ name: "gateway_send_drops_total", help: "Frames not delivered: dropped over backpressure or sockets closed as slow consumers.", labelNames: ["kind"], registers });
    this.redisUp = new Gauge({ name: "gateway_redis_up", help: "1 while the Redis connection of this role is ready.", labelNames: ["role"], registers });
    this.redisMessages = new Counter({ name: "gateway_redis_messages_received_total", help: "Pub/sub messages received from Redis.", registers });
    this.redisDropped = new Counter({
      name: "gateway_redis_messages_dropped_total",
      help: "Pub/sub messages not delivered: not a gateway frame for their channel (malformed), or the delivery threw (handler_error).",
      labelNames: ["reason"],
      registers,
    });
    this.deliveryFailures = new Counter({
      name: "gateway_delivery_failures_total",
      help: "Deliveries one protocol's sink failed to hand to its local sockets (the other sinks and later deliveries go on).",
      labelNames: ["sink"],
      registers,
    });
    this.historyGaps = new Counter({ name: "gateway_history_gaps_total", help: "Gaps in a channel's offsets seen by this node (a lost pub/sub message, or a channel behind after a Redis reconnect).", labelNames: ["namespace"], registers });
    this.historyRepairs = new Counter({ name: "gateway_history_gaps_repaired_total", help: "Gaps closed from history before anything later was delivered.", labelNames: ["namespace"], registers });
    this.historyRepairedMessages = new Counter({ name: "gateway_history_repaired_messages_total", help: "Messages read from history to close gaps.", labelNames: ["namespace"], registers });
    this.historyUnrecoverable = new Counter({
      name: "gateway_history_gaps_unrecoverable_total",
      help: "Gaps this node could not repair; the channel's local subscribers were sent a gap notice.",
      labelNames: ["namespace", "reason"],
      registers,
    });
    this.historyDuplicates = new Counter({ name: "gateway_history_duplicates_dropped_total", help: "Deliveries dropped because their offset was already forwarded.", labelNames: ["namespace"], registers });
    this.redisErrors = new Counter({ name: "gateway_redis_command_errors_total", help: "Failed Redis commands by command.", labelNames: ["command"], registers });
    this.redisResubscribes = new Counter({ name: "gateway_redis_resubscribed_channels_total", help: "Channels resubscribed after a Redis reconnect.", registers });
    this.ready = new Gauge({
      name: "gateway_ready",
      help: "1 while Redis is connected (subscriptions restored) and the node is not draining. /readyz is also 503 while Postgres is down or not migrated: see gateway_pg_up.",
      registers,
    });
    this.notReadyReason = new Gauge({
      name: "gateway_not_ready",
      help: "1 for the reason /readyz gives now (draining, redis_unavailable, postgres_unavailable, postgres_schema_not_migrated_yet), 0 for the others; updated on every /readyz and scrape.",
      labelNames: ["reason"],
      registers,
    });

    this.clockLeader = new Gauge({ name: "gateway_clock_leader", help: "1 while this node is the round authority.", registers });
    this.clockEvents = new Counter({ name: "gateway_clock_events_total", help: "Race events broadcast by this node as round authority.", labelNames: ["event"], registers });
    this.clockRoundId = new Gauge({ name: "gateway_clock_round_id", help: "Id of the current round while this node is the authority (last seen otherwise).", registers });
    this.clockLeader.set(0);
    this.clockEnabledGauge = new Gauge({ name: "gateway_clock_enabled", help: "1 when this node competes for the round clock (CLOCK_ENABLED=true).", registers });
    this.clockEnabledGauge.set(0);
    this.upgradeRefusals = new Counter({ name: "gateway_upgrade_refusals_total", help: "Connections refused before authentication because the node was not taking sockets, by reason.", labelNames: ["transport", "reason"], registers });
    this.httpRequests = new Counter({ name: "gateway_http_requests_total", help: "HTTP API requests by route and status code.", labelNames: ["route", "status"], registers });
    const poolSource = this.poolSource;
    // Read at scrape time from the pool watchPgPool() hands over.
    new Gauge({
      name: "gateway_pg_pool_connections",
      help: "Postgres pool clients by state: total, idle, waiting (callers queued for a client).",
      labelNames: ["state"],
      registers,
      collect() {
        const pool = poolSource.current;
        this.set({ state: "total" }, pool?.totalCount ?? 0);
        this.set({ state: "idle" }, pool?.idleCount ?? 0);
        this.set({ state: "waiting" }, pool?.waitingCount ?? 0);
      },
    });
    new Gauge({ name: "gateway_memory_limit_bytes", help: "Memory this process may use (MEMORY_LIMIT_MB, else the cgroup limit, else physical memory).", registers }).set(memoryLimitBytes);
    this.pgPoolMax = new Gauge({ name: "gateway_pg_pool_max", help: "Configured PG_POOL_MAX.", registers });
    this.pgUpGauge = new Gauge({ name: "gateway_pg_up", help: "1 while Postgres answers this node's health probe.", registers });
    this.pgClockSkewGauge = new Gauge({
      name: "gateway_pg_clock_skew_seconds",
      help: "This node's clock minus Postgres' clock (positive: the node is ahead), measured by the health probe; NaN until measured. Bets close by Postgres' clock.",
      registers,
    });
    this.pgClockSkewGauge.set(Number.NaN);
    this.settlementNotices = new Counter({ name: "gateway_settlement_notices_total", help: "bet_settled messages published to bettors (idempotent repeats not counted), by bet status.", labelNames: ["status"], registers });
    this.settlementFailures = new Counter({ name: "gateway_settlement_failures_total", help: "Settlement notice passes that failed (Redis or Postgres away) and were retried.", registers });
    this.pgQueryDuration = new Histogram({
      name: "gateway_pg_query_duration_seconds",
      help: "Postgres statements issued by the gateway, by operation.",
      labelNames: ["operation"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.writerQueueDepth = new Gauge({ name: "gateway_writer_queue_depth", help: "Commands waiting in the batching writer.", registers });
    this.writerQueueCapacity = new Gauge({ name: "gateway_writer_queue_capacity", help: "Configured bound of the batching writer's queue.", registers });
    this.writerBatchSize = new Histogram({ name: "gateway_writer_batch_size", help: "Rows per committed batch.", buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500], registers });
    this.writerFlushDuration = new Histogram({ name: "gateway_writer_flush_duration_seconds", help: "Time to write and commit one batch.", buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers });
    this.writerFailures = new Counter({ name: "gateway_writer_failures_total", help: "Batch attempts that failed and were retried.", registers });
    this.writerRows = new Counter({ name: "gateway_writer_rows_total", help: "Rows committed by the batching writer.", registers });
    this.writerRejected = new Counter({ name: "gateway_writer_rejected_total", help: "Commands refused before queueing, by reason.", labelNames: ["reason"], registers });
    this.ingestPublished = new Counter({ name: "gateway_ingest_published_total", help: "Redis ingest stream entries published by this node.", registers });
    this.ingestRejections = new Counter({ name: "gateway_ingest_rejected_total", help: "Redis ingest stream entries refused, by reason (copied to <prefix>:ingest:rejected).", labelNames: ["reason"], registers });
    this.ingestFailures = new Counter({ name: "gateway_ingest_failures_total", help: "Ingest loop iterations that failed and were retried.", registers });
    this.ingestClaims = new Counter({ name: "gateway_ingest_claimed_total", help: "Ingest entries taken over from a consumer that stopped answering.", registers });
    this.rateLimits = new Counter({
      name: "gateway_rate_limited_total",
      help: "Frames, requests, connections and commands refused by a rate limit, by limit (frames, subscribes, user_connections, user_commands, address_connects).",
      labelNames: ["limit"],
      registers,
    });

    // Known label values start at zero, so rates and ratios read 0 on a quiet
    // node instead of "no data", and alerts on them can evaluate at all.
    this.controlMessages = new Counter({
      name: "gateway_control_messages_total",
      help: "Control-channel messages received (disconnect, revoke; malformed ones dropped), by type.",
      labelNames: ["type"],
      registers,
    });
    this.presenceWriteFailures = new Counter({ name: "gateway_presence_write_failures_total", help: "Presence writes and lease renewals that failed; each is retried.", registers });
    for (const type of ["disconnect", "revoke", "malformed"]) this.controlMessages.inc({ type }, 0);
    for (const kind of ["backpressure", "slow_consumer_close"]) this.sendDrops.inc({ kind }, 0);
    for (const command of ["publish", "subscribe", "unsubscribe", "resubscribe"]) this.redisErrors.inc({ command }, 0);
    for (const reason of ["malformed", "handler_error"] satisfies DroppedMessageReason[]) this.redisDropped.inc({ reason }, 0);
    for (const sink of ["ws", "socketio"]) this.deliveryFailures.inc({ sink }, 0);
    for (const namespace of ["race", "forecasts", "user"]) {
      this.historyGaps.inc({ namespace }, 0);
      this.historyRepairs.inc({ namespace }, 0);
      this.historyRepairedMessages.inc({ namespace }, 0);
      this.historyDuplicates.inc({ namespace }, 0);
      for (const reason of ["history_lost", "epoch_changed", "unavailable"] satisfies GapReason[]) this.historyUnrecoverable.inc({ namespace, reason }, 0);
    }
    for (const reason of ["unauthorized", "too_large", "bad_request", "forbidden", "unavailable", "broker"]) this.publishFailures.inc({ reason }, 0);
    for (const reason of ["overloaded", "unavailable"]) this.writerRejected.inc({ reason }, 0);
    for (const status of ["won", "lost", "void"]) this.settlementNotices.inc({ status }, 0);
    for (const reason of INGEST_REJECT_REASONS) this.ingestRejections.inc({ reason }, 0);
    for (const reason of AUTH_FAILURE_REASONS) this.authFailures.inc({ reason }, 0);
    for (const limit of RATE_LIMITS) this.rateLimits.inc({ limit }, 0);
    for (const transport of ["ws", "socketio"] as const) {
      this.connections.set({ transport }, 0);
      this.connects.inc({ transport }, 0);
      for (const reason of ["draining", "unavailable"]) this.upgradeRefusals.inc({ transport, reason }, 0);
      for (const reason of ["normal", "abnormal", "drain", "slow_consumer", "token_expired", "message_too_big", "rate_limited", "disconnected", "token_revoked"]) this.disconnects.inc({ transport, reason }, 0);
    }
    for (const role of ["publisher", "subscriber"] as const) this.redisUp.set({ role }, 0);
    this.ready.set(0);
    this.notReady(null);
  }

  connectionOpened(transport: Transport): void {
    this.connections.inc({ transport });
    this.connects.inc({ transport });
  }

  connectionClosed(transport: Transport, reason: string): void {
    this.connections.dec({ transport });
    this.disconnects.inc({ transport, reason });
  }

  authFailed(reason: string): void {
    this.authFailures.inc({ reason });
  }

  subscribed(channel: string): void {
    this.subscriptions.inc({ namespace: this.namespaces.label(channel) });
    this.subscriptionRequests.inc({ result: "ok" });
  }

  subscribeRefused(code: string): void {
    this.subscriptionRequests.inc({ result: code });
  }

  unsubscribed(channel: string): void {
    this.subscriptions.dec({ namespace: this.namespaces.label(channel) });
  }

  frameReceived(transport: Transport, type: string): void {
    this.messagesIn.inc({ transport, type });
  }

  clientError(code: string): void {
    this.clientErrors.inc({ code });
  }

  /** A frame serialized on this node: once per publish ("ws"), once per delivery for Socket.IO rooms ("socketio"). */
  frameEncoded(protocol: "ws" | "socketio" = "ws"): void {
    this.frameEncodes.inc({ protocol });
  }

  published(channel: string): void {
    this.publishes.inc({ namespace: this.namespaces.label(channel) });
  }

  publishFailed(reason: string): void {
    this.publishFailures.inc({ reason });
  }

  broadcastDelivered(channel: string, recipients: number, bytes: number, latencySeconds: number, durationSeconds: number): void {
    const namespace = this.namespaces.label(channel);
    this.broadcasts.inc({ namespace });
    if (recipients > 0) {
      this.messagesOut.inc({ namespace }, recipients);
      this.bytesOut.inc({ namespace }, recipients * bytes);
    }
    this.fanoutLatency.observe({ namespace }, Math.max(0, latencySeconds));
    this.broadcastDuration.observe(durationSeconds);
  }

  sendDropped(kind: "backpressure" | "slow_consumer_close"): void {
    this.sendDrops.inc({ kind });
  }

  readinessChanged(ready: boolean): void {
    this.ready.set(ready ? 1 : 0);
  }

  notReady(reason: NotReadyReason | null): void {
    for (const known of NOT_READY_REASONS) this.notReadyReason.set({ reason: known.replace(/ /g, "_") }, known === reason ? 1 : 0);
  }

  redisConnectionChanged(role: "publisher" | "subscriber", up: boolean): void {
    this.redisUp.set({ role }, up ? 1 : 0);
  }

  redisMessageReceived(): void {
    this.redisMessages.inc();
  }

  redisMessageDropped(reason: DroppedMessageReason): void {
    this.redisDropped.inc({ reason });
  }

  deliveryFailed(sink: "ws" | "socketio"): void {
    this.deliveryFailures.inc({ sink });
  }

  gapDetected(channel: string): void {
    this.historyGaps.inc({ namespace: this.namespaces.label(channel) });
  }

  gapRepaired(channel: string, messages: number): void {
    const namespace = this.namespaces.label(channel);
    this.historyRepairs.inc({ namespace });
    this.historyRepairedMessages.inc({ namespace }, messages);
  }

  gapUnrecoverable(channel: string, reason: GapReason): void {
    this.historyUnrecoverable.inc({ namespace: this.namespaces.label(channel), reason });
  }

  duplicateDropped(channel: string): void {
    this.historyDuplicates.inc({ namespace: this.namespaces.label(channel) });
  }

  redisCommandFailed(command: string): void {
    this.redisErrors.inc({ command });
  }

  redisResubscribed(channels: number): void {
    this.redisResubscribes.inc(channels);
  }

  clockEnabled(enabled: boolean): void {
    this.clockEnabledGauge.set(enabled ? 1 : 0);
  }

  upgradeRefused(transport: Transport, reason: "draining" | "unavailable"): void {
    this.upgradeRefusals.inc({ transport, reason });
  }

  clockLeadership(held: boolean): void {
    this.clockLeader.set(held ? 1 : 0);
  }

  clockEventPublished(event: string): void {
    this.clockEvents.inc({ event });
  }

  clockRound(id: number): void {
    this.clockRoundId.set(id);
  }

  controlMessage(type: "disconnect" | "revoke" | "malformed"): void {
    this.controlMessages.inc({ type });
  }

  presenceWriteFailed(): void {
    this.presenceWriteFailures.inc();
  }

  httpRequest(route: string, status: number): void {
    this.httpRequests.inc({ route, status: String(status) });
  }

  /** Exposes the pool's state, read at every scrape. */
  watchPgPool(pool: PoolState, max: number): void {
    this.pgPoolMax.set(max);
    this.poolSource.current = pool;
  }

  pgUp(up: boolean): void {
    this.pgUpGauge.set(up ? 1 : 0);
  }

  pgClockSkew(seconds: number): void {
    this.pgClockSkewGauge.set(seconds);
  }

  betNoticesSent(status: string, count: number): void {
    this.settlementNotices.inc({ status }, count);
  }

  betNoticePassFailed(): void {
    this.settlementFailures.inc();
  }

  pgQuery(operation: string, seconds: number): void {
    this.pgQueryDuration.observe({ operation }, seconds);
  }

  writerCapacity(capacity: number): void {
    this.writerQueueCapacity.set(capacity);
  }

  writerQueued(depth: number): void {
    this.writerQueueDepth.set(depth);
  }

  writerFlushed(rows: number, seconds: number): void {
    this.writerBatchSize.observe(rows);
    this.writerFlushDuration.observe(seconds);
    this.writerRows.inc(rows);
  }

  writerFailed(): void {
    this.writerFailures.inc();
  }

  writerRejectedCommand(reason: string): void {
    this.writerRejected.inc({ reason });
  }

  ingested(count: number): void {
    this.ingestPublished.inc(count);
  }

  ingestRejected(reason: IngestRejectReason): void {
    this.ingestRejections.inc({ reason });
  }

  ingestFailed(): void {
    this.ingestFailures.inc();
  }

  ingestClaimed(count: number): void {
    this.ingestClaims.inc(count);
  }

  rateLimited(limit: RateLimit): void {
    this.rateLimits.inc({ limit });
  }
}
