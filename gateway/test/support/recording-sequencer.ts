/**
 * A ChannelSequencer over an in-memory history for the unit tests of gap
 * repair: what it forwards and every gap notice land in `out` in order
 * (`gap:<reason>`), reads are tried once and never wait.
 */

import { pino } from "pino";
import { ChannelSequencer, type GapNotice } from "../../src/history/channel-sequencer.js";
import type { History } from "../../src/history/history.js";

export interface RecordingSequencer {
  readonly seq: ChannelSequencer;
  readonly out: string[];
  readonly notices: GapNotice[];
}

export function recordingSequencer(history: Pick<History, "since">): RecordingSequencer {
  const out: string[] = [];
  const notices: GapNotice[] = [];
  const seq = new ChannelSequencer({
    history,
    forward: (delivery) => out.push(delivery.frame.toString()),
    signalGap: (notice) => {
      notices.push(notice);
      out.push(`gap:${notice.reason}`);
    },
    metrics: { gapDetected: () => undefined, gapRepaired: () => undefined, gapUnrecoverable: () => undefined, duplicateDropped: () => undefined },
    log: pino({ level: "silent" }),
    repairLimit: 100,
    maxHeld: 100,
    catchUpConcurrency: 2,
    readAttempts: 1,
    pause: () => Promise.resolve(),
  });
  return { seq, out, notices };
}

/** The same, with `channel` already subscribed. */
export async function subscribedSequencer(history: Pick<History, "since">, channel: string): Promise<RecordingSequencer> {
  const parts = recordingSequencer(history);
  await parts.seq.subscriptions({ subscribe: () => Promise.resolve(), unsubscribe: () => Promise.resolve() }).subscribe(channel);
  return parts;
}
