/**
 * GET /v1/history?channel=C&since=K&limit=L for backends (the publish key):
 * the retained messages of C after offset K, oldest first, and C's position,
 * read in one atomic step. Messages are the exact frames clients received,
 * spliced into the answer without re-encoding.
 */

import type { TemplatedApp } from "uWebSockets.js";
import type { Logger } from "pino";
import { isValidChannelName } from "../../../shared/src/channels.js";
import { ErrorCodes, type ErrorCode } from "../../../shared/src/codes.js";
import { startsAfter, type History } from "../history/history.js";
import { apiKeyCheck } from "./api-key.js";
import { guard, sendError, type ResponseGuard } from "./responses.js";

export const HISTORY_DEFAULT_LIMIT = 100;
export const HISTORY_MAX_LIMIT = 1000;

export interface HistoryApiOptions {
  readonly publishKey: string;
}

export interface HistoryApiMetrics {
  httpRequest(route: string, status: number): void;
}

export interface HistoryApiDeps {
  readonly history: Pick<History, "since">;
  readonly metrics: HistoryApiMetrics;
  readonly log: Logger;
}

/** A non-negative integer query parameter; `fallback` when absent, null when malformed or past `max`. */
function count(raw: string | undefined, fallback: number, max: number): number | null {
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d{1,16}$/.test(raw)) return null;
  const value = Number(raw);
  return value <= max ? value : null;
}

export function attachHistoryApi(app: TemplatedApp, options: HistoryApiOptions, deps: HistoryApiDeps): void {
  const authorized = apiKeyCheck(options.publishKey);
  const refuse = (res: Parameters<Parameters<TemplatedApp["get"]>[1]>[0], state: ResponseGuard, status: string, code: ErrorCode, message: string): void => {
    deps.metrics.httpRequest("history", Number(status.slice(0, 3)));
    sendError(res, state, status, { code, message });
  };

  app.get("/v1/history", (res, req) => {
    const state = guard(res);
    // req is only valid inside this callback: read everything first.
    const authorization = req.getHeader("authorization");
    const channel = req.getQuery("channel") ?? "";
    const since = count(req.getQuery("since"), 0, Number.MAX_SAFE_INTEGER);
    const limit = count(req.getQuery("limit"), HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT);

    if (!authorized(authorization)) return refuse(res, state, "401 Unauthorized", ErrorCodes.unauthorized.code, "publish key required: Authorization: Bearer <PUBLISH_KEY>");
    if (!isValidChannelName(channel)) return refuse(res, state, "400 Bad Request", ErrorCodes.badRequest.code, "channel must be 1-128 characters of A-Z a-z 0-9 _ - . : @ | = + /");
    if (since === null) return refuse(res, state, "400 Bad Request", ErrorCodes.badRequest.code, "since must be an integer offset ≥ 0");
    if (limit === null) return refuse(res, state, "400 Bad Request", ErrorCodes.badRequest.code, `limit must be an integer from 0 to ${HISTORY_MAX_LIMIT}`);

    deps.history.since(channel, since, limit).then(
      (slice) => {
        if (state.aborted) return;
        state.aborted = true;
        const head = JSON.stringify({ channel, offset: slice.position.offset, epoch: slice.position.epoch, complete: startsAfter(slice, since) });
        const body = `${head.slice(0, -1)},"messages":[${slice.messages.map((message) => message.frame.toString("utf8")).join(",")}]}`;
        deps.metrics.httpRequest("history", 200);
        res.cork(() => {
          res.writeStatus("200 OK").writeHeader("content-type", "application/json").writeHeader("cache-control", "no-store").end(body);
        });
      },
      (err: unknown) => {
        deps.log.error({ err, channel }, "history read failed");
        refuse(res, state, "503 Service Unavailable", ErrorCodes.unavailable.code, "history unavailable; retry");
      },
    );
  });
}
