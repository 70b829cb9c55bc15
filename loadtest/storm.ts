/**
 * npm run bench:storm [-- --clients 10000 --observers 500 --workers 2 --budget-mb 256]
 *
 * The reconnect storm on its own (`npm run bench` runs it too, as the
 * `storm-10k` row): see loadtest/lib/storm.ts. Prints the figures and writes
 * them to loadtest/results/storm.md (or --out).
 */

import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { repoRoot } from "../scripts/lib/paths.js";
import { startRedis } from "../scripts/lib/redis.js";
import { runController } from "./lib/controller.js";
import { renderStorm, runStorm } from "./lib/storm.js";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "10000" },
    observers: { type: "string", default: "500" },
    workers: { type: "string", default: "2" },
    "budget-mb": { type: "string", default: "256" },
    out: { type: "string" },
  },
  strict: true,
});
const numbers = { clients: Number(values.clients), observers: Number(values.observers), workers: Number(values.workers), budgetMb: Number(values["budget-mb"]) };
for (const [name, value] of Object.entries(numbers)) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a whole number >= 1`);
}
// One generator process holds at most ~17k sockets (20,000 descriptors).
if (numbers.clients / numbers.workers > 17_000) throw new Error("at most 17000 clients per worker");

async function main(): Promise<void> {
  const load = os.loadavg();
  const redis = await startRedis();
  try {
    const result = await runStorm(redis, { ...numbers, log: (line) => process.stderr.write(`[bench:storm] ${line}\n`) });
    const report = [
      `# npm run bench:storm -- --clients ${numbers.clients} --observers ${numbers.observers} --workers ${numbers.workers} --budget-mb ${numbers.budgetMb}`,
      "",
      `${new Date().toISOString()} · ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"} · Node ${process.version} · load average at start ${load.map((l) => l.toFixed(2)).join(" ")}, at the end ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
      "",
      renderStorm(result),
      "",
    ].join("\n");
    const out = values.out ?? path.join(repoRoot(), "loadtest", "results", "storm.md");
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, report);
    process.stdout.write(`${report}\nwritten to ${path.relative(process.cwd(), out)}\n`);
  } finally {
    await redis.stop();
  }
}

runController("bench:storm", main);
