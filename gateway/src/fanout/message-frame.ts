/**
 * The `message` frame's wire form, split so it is serialized once per publish:
 * the accepting node builds the head (channel, event, data) and the broker's
 * Redis script appends the tail (offset, epoch, ts) atomically with the offset
 * increment. Every node then forwards the finished bytes to its sockets
 * without parsing or re-encoding them.
 *
 *   head: {"type":"message","channel":"race","event":"tick","data":{…},"offset":
 *   tail: 42,"epoch":"k3J9x0aQ","ts":1732350000000}
 *
 * `ts` is always last, so a node can read it from the end of the frame.
 */

export function encodeFrameHead(channel: string, event: string, dataJson: string): string {
  return `{"type":"message","channel":${JSON.stringify(channel)},"event":${JSON.stringify(event)},"data":${dataJson},"offset":`;
}

/** The tail in TypeScript; the Redis script in broker/redis-broker.ts writes the same bytes. */
export function encodeFrameTail(offset: number, epoch: string, ts: number): string {
  return `${offset},"epoch":"${epoch}","ts":${ts}}`;
}

const TS_MARKER = Buffer.from(',"ts":');
const CLOSE_BRACE = 0x7d;

/** Reads `ts` from the end of a finished frame; NaN when the frame is not ours. */
export function readFrameTs(frame: Buffer): number {
  const at = frame.lastIndexOf(TS_MARKER);
  if (at === -1 || frame[frame.length - 1] !== CLOSE_BRACE) return Number.NaN;
  const digits = frame.toString("latin1", at + TS_MARKER.length, frame.length - 1);
  return /^\d{1,16}$/.test(digits) ? Number(digits) : Number.NaN;
}
