/**
 * How a load run's controller ends when it is interrupted or fails: every
 * forked worker killed and every service process it started stopped before it
 * goes, so nothing is left holding ports.
 */

import { stopAll } from "../../scripts/lib/process.js";
import { liveWorkers } from "./workers.js";

async function stopEverything(): Promise<void> {
  for (const child of liveWorkers) child.kill("SIGKILL");
  await stopAll("SIGTERM", 3000);
}

/** Runs `main`; Ctrl-C or SIGTERM exits 130 and a failure exits 1, each after stopping everything. */
export function runController(name: string, main: () => Promise<void>): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      process.stderr.write(`${name}: ${signal}: stopping workers and services\n`);
      void stopEverything().finally(() => process.exit(130));
    });
  }
  main().catch(async (err: unknown) => {
    process.stderr.write(`${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await stopEverything();
    process.exit(1);
  });
}
