/**
 * node dist/loadtest/profile-summary.js FILE.cpuprofile [TOP]
 *
 * Prints the functions with the most self time in a V8 CPU profile as a
 * markdown table (see loadtest/lib/cpuprofile.ts).
 */

import { readFileSync } from "node:fs";
import { renderSelfTimes, type CpuProfile } from "./lib/cpuprofile.js";

const [file, top] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write("usage: node dist/loadtest/profile-summary.js FILE.cpuprofile [TOP]\n");
  process.exit(64);
}
const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
process.stdout.write(`${renderSelfTimes(profile, Number(top ?? 20))}\n`);
