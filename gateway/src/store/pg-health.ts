/**
 * Whether Postgres answers, probed on a timer so readiness reflects an outage
 * even while no bet is being written. Each probe also reads the database's
 * clock: the betting window is judged by it, so how far this node's clock is
 * from it (the midpoint of the probe's round trip against the database's
 * time) is worth watching, and the round authority waits it out before it
 * draws a race's seed.
 */

import type pg from "pg";
import type { Logger } from "pino";

export class PgHealth {
  private up = false;
  private aheadMs = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly pool: pg.Pool,
    private readonly intervalMs: number,
    private readonly log: Logger,
    /**
     * Called after every probe, not only on changes: see BatchingWriter.storeIsUp().
     * `nodeAheadMs` is null when the probe failed.
     */
    private readonly onProbe: (up: boolean, nodeAheadMs: number | null) => void,
  ) {}

  start(): void {
    const probe = (): void => {
      const sent = Date.now();
      this.pool.query<{ db_ms: number }>("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS db_ms").then(
        ({ rows }) => {
          const received = Date.now();
          const dbMs = rows[0]?.db_ms;
          if (dbMs !== undefined) this.aheadMs = (sent + received) / 2 - dbMs;
          this.set(true);
        },
        (err: unknown) => {
          if (this.up) this.log.warn({ err }, "postgres unreachable");
          this.set(false);
        },
      ).finally(() => {
        if (this.timer !== null) this.timer = setTimeout(probe, this.intervalMs);
      });
    };
    this.timer = setTimeout(probe, 0);
  }

  isUp(): boolean {
    return this.up;
  }

  /** ms this node's clock runs ahead of the database's (negative: behind), as last measured; 0 before. */
  nodeAheadMs(): number {
    return this.aheadMs;
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private set(up: boolean): void {
    if (up !== this.up && up) this.log.info("postgres reachable");
    this.up = up;
    this.onProbe(up, up ? this.aheadMs : null);
  }
}
