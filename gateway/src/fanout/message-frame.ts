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
 * The tail is always last, so a node reads offset, epoch and ts from the end
 * of the frame (readFrameEnvelope) without parsing `data`.
 */

export function encodeFrameHead(channel: string, event: string, dataJson: string): string {
  return `{"type":"message","channel":${JSON.stringify(channel)},"event":${JSON.stringify(event)},"data":${dataJson},"offset":`;
}

/** The tail in TypeScript; publish_all in broker/publish-script.ts writes the same bytes. */
export function encodeFrameTail(offset: number, epoch: string, ts: number): string {
  return `${offset},"epoch":"${epoch}","ts":${ts}}`;
}

const OFFSET_MARKER = Buffer.from(',"offset":');
/** The tail publish_all appends; the epoch alphabet is base64url (publish-script.ts). */
const TAIL_PATTERN = /^(\d{1,16}),"epoch":"([A-Za-z0-9_-]{1,64})","ts":(\d{1,16})\}$/;

const HEAD_START = '{"type":"message","channel":"';
/** Channel names are 1-128 characters without quotes or backslashes (shared/src/channels.ts). */
const MAX_CHANNEL_BYTES = 128;

/**
 * The channel a frame names, read from its head without parsing the rest;
 * null when the frame does not start like a gateway message frame. For bus
 * channels that carry many channels (personal-channel shards).
 */
export function readFrameChannel(frame: Buffer): string | null {
  if (frame.length <= HEAD_START.length || frame.toString("latin1", 0, HEAD_START.length) !== HEAD_START) return null;
  const end = frame.indexOf(0x22, HEAD_START.length);
  if (end <= HEAD_START.length || end - HEAD_START.length > MAX_CHANNEL_BYTES) return null;
  return frame.toString("latin1", HEAD_START.length, end);
}

/** What a node reads from a frame it forwards: only the envelope, never `data`. */
export interface FrameEnvelope {
  readonly offset: number;
  readonly epoch: string;
  /** Publish time at the accepting node, ms since the epoch. */
  readonly ts: number;
}

/**
 * Checks that `frame` is a gateway message frame for `channel` (its head names
 * the channel, its tail is the script's) and reads the tail; null for anything
 * else. The middle (event, data) is not parsed: the accepting node encoded it,
 * and parsing every frame on every node would undo serialize-once. The tail
 * is the last `,"offset":` in the frame, since `data` precedes it.
 */
export function readFrameEnvelope(channel: string, frame: Buffer): FrameEnvelope | null {
  const head = `{"type":"message","channel":${JSON.stringify(channel)},"event":"`;
  if (frame.length <= head.length || frame.toString("latin1", 0, head.length) !== head) return null;
  const at = frame.lastIndexOf(OFFSET_MARKER);
  if (at < head.length) return null;
  const tail = TAIL_PATTERN.exec(frame.toString("latin1", at + OFFSET_MARKER.length));
  if (tail === null) return null;
  return { offset: Number(tail[1]), epoch: tail[2] as string, ts: Number(tail[3]) };
}
