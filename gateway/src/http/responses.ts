/**
 * JSON responses for uWebSockets.js, safe to call after an await: they skip a
 * response the client already abandoned and cork the writes into one syscall.
 */

import type { HttpResponse } from "uWebSockets.js";
import type { ErrorBody } from "../../../shared/src/protocol.js";

/** Tracks whether the peer went away; uWS forbids touching an aborted response. */
export interface ResponseGuard {
  aborted: boolean;
}

export function guard(res: HttpResponse): ResponseGuard {
  const state: ResponseGuard = { aborted: false };
  res.onAborted(() => {
    state.aborted = true;
  });
  return state;
}

export function sendJson(res: HttpResponse, state: ResponseGuard, status: string, body: unknown, closeConnection = false): void {
  if (state.aborted) return;
  state.aborted = true;
  res.cork(() => {
    res.writeStatus(status).writeHeader("content-type", "application/json").writeHeader("cache-control", "no-store");
    res.end(JSON.stringify(body), closeConnection);
  });
}

export function sendError(res: HttpResponse, state: ResponseGuard, status: string, error: ErrorBody, closeConnection = false): void {
  sendJson(res, state, status, { error }, closeConnection);
}
