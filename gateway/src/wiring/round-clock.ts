/**
 * The race rounds. Every node reads them (RoundView answers `race`
 * snapshots and the betting window); CLOCK_ENABLED nodes also compete for the
 * lease to drive them, once the schema is migrated, record them in Postgres
 * (which settles or voids their bets) and tell bettors how their bets ended.
 */

import type { Logger } from "pino";
import { RACE_CHANNEL } from "../../../shared/src/channels.js";
import type { RaceSnapshot } from "../../../shared/src/race-events.js";
import { RoundAuthority, type ClockMetrics } from "../clock/round-authority.js";
import { RoundLedger } from "../clock/round-ledger.js";
import type { PublishPolicy } from "../broker/publish-script.js";
import { RoundRecorder } from "../clock/round-recorder.js";
import { RoundView } from "../clock/round-view.js";
import { SeedVault } from "../clock/seed-vault.js";
import { SettlementNotifier, type NoticePublisher, type SettlementMetrics } from "../clock/settlement-notifier.js";
import type { GatewayConfig } from "../config.js";
import type { ShutdownStep } from "../lifecycle/shutdown.js";
import type { RedisConnections } from "../redis/connections.js";
import type { QueryTimer } from "../store/bet-store.js";
import { PgRoundStore } from "../store/round-store.js";
import { PgSettlementStore } from "../store/settlement-store.js";
import type { Database } from "./database.js";

/** At shutdown, rounds not yet recorded get this long for one last write. */
const RECORDER_STOP_TIMEOUT_MS = 2000;

export interface RoundClockWiring {
  readonly view: RoundView;
  /** What a subscribe reply carries: the round as a screen should show it on `race`, nothing elsewhere. */
  readonly snapshotFor: (channel: string) => Promise<RaceSnapshot | null> | null;
  readonly steps: {
    /** Releases the lease, so another node takes the rounds over while this one drains. */
    readonly handOver: ShutdownStep;
    readonly recordPendingRounds: ShutdownStep;
    /** Lets a notice pass in progress finish; what is left is sent by the next authority. */
    readonly stopNotices: ShutdownStep;
    readonly closeLedger: ShutdownStep;
  };
}

export function wireRoundClock(
  config: GatewayConfig,
  redis: RedisConnections,
  policy: PublishPolicy,
  database: Database | null,
  publisher: NoticePublisher,
  metrics: ClockMetrics & QueryTimer & SettlementMetrics,
  log: Logger,
  stopping: AbortSignal,
): RoundClockWiring {
  const ledger = new RoundLedger({ redis, policy, log });
  let authority: RoundAuthority | null = null;
  let recorder: RoundRecorder | null = null;
  let notifier: SettlementNotifier | null = null;
  // Config refuses CLOCK_ENABLED without DATABASE_URL, so a clock always has a database.
  if (config.clock !== null && database !== null) {
    const store = new PgRoundStore(database.pool, metrics);
    const notices = new SettlementNotifier({ store: new PgSettlementStore(database.pool), publisher, maxBatch: config.publishMaxBatch, metrics, log });
    notifier = notices;
    recorder = new RoundRecorder(store, config.nodeId, log, () => notices.kick());
    const clock = new RoundAuthority({
      nodeId: config.nodeId,
      config: config.clock,
      ledger,
      store,
      recorder,
      vault: new SeedVault(config.clock.seedSecret),
      notifier: notices,
      databaseClock: database.clock,
      metrics,
      log,
    });
    authority = clock;
    void database.migrated.then((done) => {
      if (done && !stopping.aborted) clock.start();
    });
  }
  const view = new RoundView(ledger);
  return {
    view,
    snapshotFor: (channel) => (channel === RACE_CHANNEL ? view.snapshot() : null),
    steps: {
      handOver: { name: "hand over the round clock", run: () => authority?.stop() },
      recordPendingRounds: { name: "record pending rounds", run: () => recorder?.stop(RECORDER_STOP_TIMEOUT_MS) },
      stopNotices: { name: "stop settlement notices", run: () => notifier?.stop() },
      closeLedger: { name: "close clock ledger", run: () => ledger.close() },
    },
  };
}
