/**
 * Whether Postgres answers, probed on a timer so readiness reflects an outage
 * even while no bet is being written.
 */

import type pg from "pg";
import type { Logger } from "pino";

export class PgHealth {
  private up = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly pool: pg.Pool,
    private readonly intervalMs: number,
    private readonly log: Logger,
    /** Called after every probe, not only on changes: see BatchingWriter.storeIsUp(). */
    private readonly onProbe: (up: boolean) => void,
  ) {}

  start(): void {
    const probe = (): void => {
      this.pool.query("SELECT 1").then(
        () => this.set(true),
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

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private set(up: boolean): void {
    if (up !== this.up && up) this.log.info("postgres reachable");
    this.up = up;
    this.onProbe(up);
  }
}
