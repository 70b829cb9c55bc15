/**
 * Ordered, idempotent shutdown: not ready → stop listening → tell clients to
 * reconnect elsewhere (1012, spread over the drain window) → close the broker.
 * A watchdog exits non-zero if a step hangs, so an orchestrator never waits
 * on a wedged node.
 */

import type { Logger } from "pino";

/**
 * How much longer than the drain window the whole shutdown may take before the
 * watchdog exits 1. Orchestrators must wait longer than drain window + this
 * before they kill (deploy/kubernetes checks its grace period against it).
 */
export const SHUTDOWN_WATCHDOG_MARGIN_MS = 15_000;

export interface ShutdownStep {
  readonly name: string;
  run(): void | Promise<void>;
}

export class Shutdown {
  private running: Promise<void> | null = null;

  constructor(
    private readonly steps: readonly ShutdownStep[],
    private readonly log: Logger,
    private readonly watchdogMs: number,
  ) {}

  /** Runs every step once, in order; later calls return the same promise. */
  run(signal: string): Promise<void> {
    if (this.running !== null) return this.running;
    this.log.info({ signal }, "shutdown started");
    const watchdog = setTimeout(() => {
      this.log.error({ watchdogMs: this.watchdogMs }, "shutdown took too long, exiting");
      process.exit(1);
    }, this.watchdogMs);
    watchdog.unref();
    this.running = (async () => {
      for (const step of this.steps) {
        const started = Date.now();
        try {
          await step.run();
        } catch (err) {
          this.log.error({ err, step: step.name }, "shutdown step failed");
        }
        this.log.info({ step: step.name, ms: Date.now() - started }, "shutdown step done");
      }
      clearTimeout(watchdog);
    })();
    return this.running;
  }
}
