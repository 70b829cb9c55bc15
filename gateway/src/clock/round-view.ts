/**
 * What a screen should show right now, for the snapshot in a `race`
 * subscribe reply. Any node can answer: it reads the stored round and applies
 * the same arithmetic as the authority. A short cache keeps a reconnect storm
 * from turning into one Redis read per socket.
 */

import type { RaceSnapshot } from "../../../shared/src/race-events.js";
import type { Clock } from "../time/clock.js";
import type { RoundLedger } from "./round-ledger.js";
import { snapshot, type RoundState } from "./round-schedule.js";

export class RoundView {
  private cached: { state: RoundState | null; at: number } | null = null;
  private loading: Promise<RoundState | null> | null = null;

  constructor(
    private readonly ledger: Pick<RoundLedger, "read">,
    private readonly cacheMs = 100,
    private readonly clock: Clock = Date,
  ) {}

  /** Null while no round exists yet. Rejects when Redis cannot be read. */
  async snapshot(): Promise<RaceSnapshot | null> {
    const state = await this.state();
    return state === null ? null : snapshot(state, this.clock.now());
  }

  /** The stored round (cached briefly). Rejects when Redis cannot be read. */
  current(): Promise<RoundState | null> {
    return this.state();
  }

  private async state(): Promise<RoundState | null> {
    const now = this.clock.now();
    if (this.cached !== null && now - this.cached.at < this.cacheMs) return this.cached.state;
    this.loading ??= this.ledger.read().finally(() => {
      this.loading = null;
    });
    const state = await this.loading;
    this.cached = { state, at: now };
    return state;
  }
}
