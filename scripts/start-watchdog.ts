// The watchdog of one npm start run: `node start-watchdog.js <record file> <run id>`, started
// by npm start (scripts/lib/supervised-run.ts) with a pipe on stdin whose other end only npm
// start holds. The pipe reaches end-of-file when npm start is gone, however it went (SIGKILL,
// an OOM kill, a crash), and the watchdog then stops what the start record lists, the same
// way the next npm start would. After a clean stop npm start has removed the record first,
// and the watchdog exits without doing anything.
import { pollUntil, stopLeftovers } from "./lib/leftovers.js";
import { tolerateClosedOutput } from "./lib/closed-output.js";
import { isRunning } from "./lib/process-identity.js";
import { readRecord, removeRecord } from "./lib/start-record.js";

/** End-of-file arrives while the kernel is still tearing npm start down. */
const SUPERVISOR_EXIT_WAIT_MS = 5000;

const say = (line: string): void => {
  process.stderr.write(`[start-watchdog] ${line}\n`);
};

async function supervisorGone(recordFile: string, runId: string): Promise<number> {
  const found = readRecord(recordFile);
  if (found.kind !== "record" || found.record.runId !== runId) return 0;
  const { record } = found;
  if (!(await pollUntil(() => !isRunning(record.supervisor), SUPERVISOR_EXIT_WAIT_MS))) {
    say(`stdin closed but npm start (pid ${record.supervisor.pid}) still runs; leaving its processes to it`);
    return 1;
  }
  say(`npm start (pid ${record.supervisor.pid}) is gone without stopping what it started; stopping it now`);
  await stopLeftovers(record, say);
  removeRecord(recordFile, runId);
  say(`stopped everything npm start (pid ${record.supervisor.pid}) started and removed ${record.tempDir}`);
  return 0;
}

function main(): void {
  const [recordFile, runId] = process.argv.slice(2);
  if (recordFile === undefined || runId === undefined) {
    say("usage: start-watchdog.js <record file> <run id>");
    process.exit(2);
  }
  tolerateClosedOutput();
  let done = false;
  const onEnd = (): void => {
    if (done) return;
    done = true;
    supervisorGone(recordFile, runId).then(
      (code) => process.exit(code),
      (err: unknown) => {
        say(`could not stop what npm start left: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.stdin.on("end", onEnd);
  process.stdin.on("close", onEnd);
  process.stdin.on("error", onEnd);
  process.stdin.resume();
}

main();
