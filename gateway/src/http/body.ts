/**
 * Reads a request body with a hard size limit. uWS streams the body in chunks
 * into ArrayBuffers that are only valid during the callback, so each chunk is
 * copied out before the next arrives.
 */

import type { HttpResponse } from "uWebSockets.js";

export type BodyResult = { readonly ok: true; readonly body: Buffer } | { readonly ok: false; readonly reason: "too_large" };

export function readBody(res: HttpResponse, maxBytes: number, onDone: (result: BodyResult) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  res.onData((chunk, isLast) => {
    if (finished) return;
    size += chunk.byteLength;
    if (size > maxBytes) {
      finished = true;
      onDone({ ok: false, reason: "too_large" });
      return;
    }
    chunks.push(Buffer.from(chunk.slice(0)));
    if (isLast) {
      finished = true;
      onDone({ ok: true, body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size) });
    }
  });
}
