/**
 * permessage-deflate on `/ws` (WS_COMPRESSION, WS_COMPRESSION_MIN_BYTES).
 *
 * Negotiated per socket: only a client that offers the extension gets
 * compressed frames, every other client on the same topic gets the same
 * deliveries uncompressed. uWebSockets.js (v20.30) deflates inside each
 * socket's send, so a published frame is compressed once per recipient, not
 * once per publish, with the shared compressor too (docs/performance.md has
 * the measurement). That cost is why the default is off and why small frames
 * stay uncompressed even when it is on.
 */

import uWS from "uWebSockets.js";

export const WS_COMPRESSION_MODES = ["off", "shared", "dedicated-4kb"] as const;

/**
 * - `shared`: one compressor for the node, reset after every message (no
 *   memory per socket; each frame compressed from scratch).
 * - `dedicated-4kb`: a compressor per compressing socket that remembers the
 *   last 512 bytes it sent, so a small frame much like the last one shrinks to
 *   a few dozen bytes. uWS' larger dedicated sizes are not offered: in this
 *   build (v20.30) they compress exactly like this one (measured in
 *   docs/performance.md) and would only cost memory.
 */
export type WsCompression = (typeof WS_COMPRESSION_MODES)[number];

export interface WsCompressionConfig {
  readonly mode: WsCompression;
  /** Frames shorter than this go uncompressed even to sockets that negotiated compression. */
  readonly minBytes: number;
}

const UWS_OPTIONS: Readonly<Record<WsCompression, uWS.CompressOptions>> = {
  off: uWS.DISABLED,
  // Client frames are small commands: one shared decompressor is enough.
  shared: uWS.SHARED_COMPRESSOR | uWS.SHARED_DECOMPRESSOR,
  "dedicated-4kb": uWS.DEDICATED_COMPRESSOR_4KB | uWS.SHARED_DECOMPRESSOR,
};

/** The `compression` behaviour option of the `/ws` route. */
export function uwsCompression(config: WsCompressionConfig): uWS.CompressOptions {
  return UWS_OPTIONS[config.mode];
}

/**
 * Whether a frame of `bytes` should be sent with the compress flag. uWS
 * ignores the flag for a socket that did not negotiate compression.
 */
export function compressFrame(config: WsCompressionConfig, bytes: number): boolean {
  return config.mode !== "off" && bytes >= config.minBytes;
}
