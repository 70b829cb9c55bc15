/**
 * The cluster's single round authority. Every node runs one; only the holder
 * of the Redis lease drives rounds. One timer drives everything the authority
 * does: it wakes at the next due instant (a transition, a timer_update or a
 * race_sync), acts, and re-arms from absolute times, so cadences never drift
 * apart and a late wake-up does not accumulate.
 *
 * Exactly-once announcements come from the ledger: a transition and its
 * broadcast are one fenced compare-and-set in Redis. A node that takes over
 * continues from the stored round, so no round id is skipped or repeated and
 * no lifecycle event is lost or doubled.
 *
 * Fairness: the result is drawn only when betting closes. The race start
 * draws a fresh seed, announces its commitment, and keeps the seed sealed in
 * the round state (SeedVault); the finish opens it, computes the ranking from
 * it (rankingFromSeed, the SDK's function) and reveals both. A round that
 * cannot finish (its state was lost, or its seal does not open) is voided:
 * round_voided, then the next round at once.
 */

import type { Logger } from "pino";
import { RACE_CHANNEL } from "../../../shared/src/channels.js";
import { rankingFromSeed } from "../../../shared/src/client/verify-round.js";
import type { RaceEventName, RoundVoided } from "../../../shared/src/race-events.js";
import { RaceEvents } from "../../../shared/src/race-events.js";
import type { Publication } from "../broker/broker.js";
import type { ClockConfig } from "../config.js";
import type { Clock } from "../time/clock.js";
import { RetryBackoff } from "../time/retry-backoff.js";
import { encodeFrameHead } from "../fanout/message-frame.js";
import type { RoundStore } from "../store/round-store.js";
import { FencedError, RoundConflictError, type RoundLedger } from "./round-ledger.js";
import type { RoundRecorder } from "./round-recorder.js";
import { endDue, finishDue, oddsFor, planRound, raceSync, timerUpdate, toRecord, type RoundState } from "./round-schedule.js";
import type { SeedVault } from "./seed-vault.js";

export interface ClockMetrics {
  clockLeadership(held: boolean): void;
  clockEventPublished(event: RaceEventName): void;
  clockRound(id: number): void;
  frameEncoded(): void;
}

/** How this node's clock relates to the database's, which decides the betting window. */
export interface DatabaseClock {
  /** ms this node's clock runs ahead of the database's (negative: behind), as last measured; 0 before. */
  nodeAheadMs(): number;
}

export interface RoundAuthorityDeps {
  readonly nodeId: string;
  readonly config: ClockConfig;
  readonly ledger: RoundLedger;
  readonly store: Pick<RoundStore, "latestRound">;
  readonly recorder: Pick<RoundRecorder, "record">;
  readonly vault: Pick<SeedVault, "draw" | "seal" | "open">;
  /** Bettors of rounds a previous authority settled may not have been told yet. */
  readonly notifier: { kick(): void };
  readonly databaseClock?: DatabaseClock;
  readonly metrics: ClockMetrics;
  readonly log: Logger;
  readonly clock?: Clock;
}

type VoidedRound = Pick<RoundVoided, "roundId" | "reason">;

/** After a failed step (Redis away), try again within this long, jittered, doubling up to RETRY_MAX_MS. */
const RETRY_MS = 250;
const RETRY_MAX_MS = 1000;

/** The first grid point anchor + k·interval strictly after `now`. */
function nextGridPoint(anchor: number, interval: number, now: number): number {
  return anchor + (Math.floor((now - anchor) / interval) + 1) * interval;
}

export class RoundAuthority {
  private readonly clock: Clock;
  private readonly retry = new RetryBackoff({ initialDelayMs: RETRY_MS, maxDelayMs: RETRY_MAX_MS });
  private lease: string | null = null;
  private state: RoundState | null = null;
  /** Round ids never go below this: the highest id Redis or Postgres has seen. */
  private floorId = 0;
  /** A round whose state was lost while unfinished: announced as voided with the next round_started. */
  private orphan: number | null = null;
  private nextPeriodicAt = 0;
  private electionTimer: NodeJS.Timeout | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private stepping: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly deps: RoundAuthorityDeps) {
    this.clock = deps.clock ?? Date;
  }

  /** Starts competing for the lease; renews it every third of its TTL. */
  start(): void {
    const every = Math.max(100, Math.floor(this.deps.config.leaseTtlMs / 3));
    const elect = (): void => {
      if (this.stopped) return;
      void this.elect().finally(() => {
        if (!this.stopped) this.electionTimer = setTimeout(elect, every);
      });
    };
    elect();
  }

  /** Stops ticking and hands the lease back so another node takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.electionTimer !== null) clearTimeout(this.electionTimer);
    if (this.tickTimer !== null) clearTimeout(this.tickTimer);
    await this.stepping;
    const lease = this.lease;
    this.resign("shutdown");
    if (lease !== null) {
      await this.deps.ledger.release(lease).catch((err: unknown) => this.deps.log.warn({ err }, "releasing the clock lease failed; it expires by itself"));
    }
  }

  private async elect(): Promise<void> {
    const { ledger, config, nodeId, log } = this.deps;
    try {
      if (this.lease !== null) {
        if (!(await ledger.renew(this.lease, config.leaseTtlMs))) this.resign("lease lost");
        return;
      }
      const lease = await ledger.acquire(nodeId, config.leaseTtlMs);
      if (lease !== null) await this.takeOver(lease);
    } catch (err) {
      // Redis unreachable: the fenced scripts keep a stale holder harmless,
      // and the lease expires by itself if this node cannot renew it.
      log.warn({ err }, "clock election step failed");
    }
  }

  private async takeOver(lease: string): Promise<void> {
    const { ledger, store, recorder, log } = this.deps;
    const state = await ledger.read();
    let latest: Awaited<ReturnType<RoundStore["latestRound"]>> = null;
    try {
      latest = await store.latestRound();
    } catch (err) {
      // Without Redis state the next id would be a guess: give the lease back.
      if (state === null) {
        await ledger.release(lease);
        throw err;
      }
      log.warn({ err }, "postgres unavailable at takeover; numbering continues from redis");
    }
    this.lease = lease;
    this.state = state;
    this.floorId = Math.max(latest?.id ?? 0, state?.id ?? 0);
    // Redis lost the round Postgres still has open: it can only be voided.
    this.orphan = state === null && latest?.open === true ? latest.id : null;
    this.nextPeriodicAt = 0;
    this.deps.metrics.clockLeadership(true);
    if (state !== null) this.deps.metrics.clockRound(state.id);
    log.info({ lease, roundId: state?.id ?? null, phase: state?.phase ?? null, recordedMax: latest?.id ?? null, orphan: this.orphan }, "became round authority");
    // Whatever the previous authority may not have written or announced yet.
    if (state?.previous) recorder.record(state.previous);
    if (state !== null) recorder.record(toRecord(state));
    this.deps.notifier.kick();
    this.schedule(0);
  }

  private resign(reason: string): void {
    if (this.lease === null) return;
    this.deps.log.warn({ reason, roundId: this.state?.id ?? null }, "no longer round authority");
    this.lease = null;
    this.state = null;
    if (this.tickTimer !== null) clearTimeout(this.tickTimer);
    this.tickTimer = null;
    this.deps.metrics.clockLeadership(false);
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.lease === null) return;
    if (this.tickTimer !== null) clearTimeout(this.tickTimer);
    this.tickTimer = setTimeout(() => {
      this.tickTimer = null;
      this.stepping = this.step().finally(() => {
        this.stepping = null;
      });
    }, Math.max(0, delayMs));
  }

  private async step(): Promise<void> {
    const lease = this.lease;
    if (lease === null) return;
    let nextDelay: number;
    try {
      nextDelay = await this.advance(lease);
      this.retry.reset();
    } catch (err) {
      if (err instanceof FencedError) {
        this.resign("fenced");
        return;
      }
      if (err instanceof RoundConflictError) {
        const before = this.state;
        this.deps.log.error({ roundId: before?.id ?? null }, "round changed underneath the authority; reloading");
        this.state = await this.deps.ledger.read().catch((readError: unknown) => {
          // Keep the stale state: the next step's compare-and-set refuses it again if it is wrong.
          this.deps.log.warn({ err: readError }, "reloading the round failed");
          return this.state;
        });
        // The stored round vanished (Redis lost it) before this one finished.
        if (this.state === null && before !== null && before.phase !== "finished") this.orphan = before.id;
      } else {
        this.deps.log.warn({ err }, "clock step failed");
      }
      nextDelay = this.retry.next();
    }
    this.schedule(nextDelay);
  }

  /** Performs whatever is due now; returns ms until the next due instant. */
  private async advance(lease: string): Promise<number> {
    const now = this.clock.now();
    const { config } = this.deps;
    // Catching up after a takeover may need several transitions in one go;
    // each is its own atomic announcement, none is skipped.
    for (let i = 0; i < 3; i++) {
      const state = this.state;
      if (state === null) await this.startRound(lease, null, now, this.orphan === null ? null : { roundId: this.orphan, reason: "state_lost" });
      else if (state.phase === "finished" && now >= endDue(state)) await this.startRound(lease, state, now, null);
      else if (state.phase === "waiting" && now >= this.raceStartDue(state)) await this.startRace(lease, state, now);
      else if (state.phase === "racing" && now >= finishDue(state)) await this.finishRace(lease, state, now);
      else break;
    }
    const state = this.state;
    if (state === null) return RETRY_MS;

    const waiting = state.phase === "waiting";
    const interval = waiting ? config.timerUpdateIntervalMs : config.raceSyncIntervalMs;
    const anchor = waiting ? state.startedAt : (state.raceStartedAt ?? state.raceStartAt);
    if (now >= this.nextPeriodicAt) {
      if (this.nextPeriodicAt !== 0) {
        if (waiting) await this.announce(lease, [[RaceEvents.timerUpdate, timerUpdate(state, now)]]);
        else await this.announce(lease, [[RaceEvents.raceSync, raceSync(state, now)]]);
      }
      this.nextPeriodicAt = nextGridPoint(anchor, interval, now);
    }
    const transitionAt = waiting ? this.raceStartDue(state) : state.phase === "racing" ? finishDue(state) : endDue(state);
    return Math.min(transitionAt, this.nextPeriodicAt) - this.clock.now();
  }

  /**
   * Bets close at the planned race start by the database's clock. A node
   * whose clock runs ahead of it waits that much longer before it draws the
   * seed, so no bet the database still accepts comes after the draw.
   */
  private raceStartDue(state: RoundState): number {
    return state.raceStartAt + Math.max(0, this.deps.databaseClock?.nodeAheadMs() ?? 0);
  }

  /** Opens the next round; `voided`, when given, is announced first (its bets are voided when the new round is recorded). */
  private async startRound(lease: string, previous: RoundState | null, now: number, voided: VoidedRound | null): Promise<void> {
    const { config, ledger, recorder } = this.deps;
    const id = Math.max(this.floorId, previous?.id ?? 0) + 1;
    const durations = { waitMs: config.waitMs, raceMs: config.raceMs, finishMs: config.finishMs };
    const odds = oddsFor(config.runners, config.oddsMarginBp);
    const next = planRound(id, now, durations, odds, previous === null ? null : toRecord(previous));
    const events: Array<readonly [RaceEventName, unknown]> = [];
    if (voided !== null) events.push([RaceEvents.roundVoided, { ...voided, serverTime: now } satisfies RoundVoided]);
    events.push(
      [RaceEvents.roundStarted, { roundId: id, startedAt: now, raceStartTime: next.raceStartAt, durations, runners: config.runners, odds, serverTime: now }],
      [RaceEvents.timerUpdate, timerUpdate(next, now)],
    );
    await ledger.transition(lease, previous === null ? null : { id: previous.id, phase: previous.phase }, next, this.publications(events));
    this.countEvents(events.map(([event]) => event));
    this.state = next;
    this.floorId = id;
    this.orphan = null;
    this.nextPeriodicAt = nextGridPoint(next.startedAt, config.timerUpdateIntervalMs, now);
    this.deps.metrics.clockRound(id);
    recorder.record(toRecord(next));
    if (voided !== null) this.deps.log.warn({ roundId: voided.roundId, reason: voided.reason }, "round voided");
    this.deps.log.info({ roundId: id }, "round started");
  }

  /** Betting has closed: draw the seed now, announce its commitment, keep it sealed until the finish. */
  private async startRace(lease: string, state: RoundState, now: number): Promise<void> {
    const { config, ledger, recorder, vault } = this.deps;
    const drawn = vault.draw();
    const next: RoundState = { ...state, phase: "racing", raceStartedAt: now, commitment: drawn.commitment, sealedSeed: vault.seal(state.id, drawn) };
    await ledger.transition(lease, { id: state.id, phase: state.phase }, next, this.publications([
      [RaceEvents.raceStarted, { roundId: state.id, raceStartTime: now, raceDuration: state.finishAt - state.raceStartAt, commitment: drawn.commitment, serverTime: now }],
      [RaceEvents.raceSync, raceSync(next, now)],
    ]));
    this.countEvents([RaceEvents.raceStarted, RaceEvents.raceSync]);
    this.state = next;
    this.nextPeriodicAt = nextGridPoint(now, config.raceSyncIntervalMs, now);
    recorder.record(toRecord(next));
  }

  private async finishRace(lease: string, state: RoundState, now: number): Promise<void> {
    const { ledger, recorder, vault, log } = this.deps;
    const seed = state.commitment === null || state.sealedSeed === null ? null : vault.open(state.id, state.commitment, state.sealedSeed);
    if (seed === null || state.commitment === null) {
      // Another ROUND_SEED_KEY, or a damaged seal: the committed result cannot be revealed.
      log.error({ roundId: state.id }, "the race's sealed seed does not open; voiding the round");
      await this.startRound(lease, state, now, { roundId: state.id, reason: "seed_unavailable" });
      return;
    }
    const ranking = await rankingFromSeed(seed, state.runners);
    const next: RoundState = { ...state, phase: "finished", finishedAt: now, sealedSeed: null, seed, ranking };
    const winner = ranking[0] ?? 0;
    await ledger.transition(lease, { id: state.id, phase: state.phase }, next, this.publications([
      [RaceEvents.roundFinished, { roundId: state.id, result: { ranking, winner }, seed, commitment: state.commitment, finishedAt: now, nextRoundAt: endDue(next), serverTime: now }],
      [RaceEvents.raceSync, raceSync(next, now)],
    ]));
    this.countEvents([RaceEvents.roundFinished, RaceEvents.raceSync]);
    this.state = next;
    recorder.record(toRecord(next));
    log.info({ roundId: state.id, winner }, "round finished");
  }

  private async announce(lease: string, events: ReadonlyArray<readonly [RaceEventName, unknown]>): Promise<void> {
    await this.deps.ledger.publish(lease, this.publications(events));
    this.countEvents(events.map(([event]) => event));
  }

  private publications(events: ReadonlyArray<readonly [RaceEventName, unknown]>): Publication[] {
    const ts = this.clock.now();
    return events.map(([event, data]) => {
      this.deps.metrics.frameEncoded();
      return { channel: RACE_CHANNEL, ts, frameHead: encodeFrameHead(RACE_CHANNEL, event, JSON.stringify(data)) };
    });
  }

  private countEvents(events: readonly RaceEventName[]): void {
    for (const event of events) this.deps.metrics.clockEventPublished(event);
  }
}
