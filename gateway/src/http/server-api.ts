/**
 * The server API beyond publishing, for backends and operators, on the same
 * credential as POST /v1/publish (`Authorization: Bearer <PUBLISH_KEY>`):
 *
 * - POST /v1/disconnect `{user, reason?}`: closes every socket of the user on
 *   every node (close code 4000, the reason in the close frame).
 * - POST /v1/revoke `{user, before?}`: refuses the user's tokens issued
 *   before `before` (ms, default now) everywhere, until they cannot be valid
 *   any more, and closes the sockets holding one (4003).
 * - GET /v1/presence?channel=C[&stats=1]: who is on C across the cluster.
 * - GET /v1/channels?prefix=P[&cursor=C][&limit=N]: channels with
 *   subscribers, cluster-wide, in name order, a page at a time.
 * - GET /v1/info: every live node's status.
 *
 * docs/openapi.yaml is the contract; the answers are checked against it.
 */

import type { HttpResponse, TemplatedApp } from "uWebSockets.js";
import type { Logger } from "pino";
import { isValidChannelName, isValidSub, MAX_CHANNEL_LENGTH, MAX_SUB_LENGTH } from "../../../shared/src/channels.js";
import { ErrorCodes, type ErrorCode } from "../../../shared/src/codes.js";
import { isPlainObject } from "../../../shared/src/json.js";
import type { PresenceResult } from "../../../shared/src/protocol.js";
import { isValidDisconnectReason, MAX_DISCONNECT_REASON_BYTES } from "../cluster/control-channel.js";
import type { ChannelPage, NodeStatus } from "../cluster/node-registry.js";
import type { Revocation } from "../cluster/revocations.js";
import type { Clock } from "../time/clock.js";
import { apiKeyCheck } from "./api-key.js";
import { readBody } from "./body.js";
import { guard, sendError, sendJson, type ResponseGuard } from "./responses.js";

/** Bodies of disconnect and revoke are a user name and a few fields. */
export const SERVER_API_MAX_BODY_BYTES = 4096;
export const CHANNELS_DEFAULT_LIMIT = 100;
export const CHANNELS_MAX_LIMIT = 1000;

/** Commands that act on a user's sockets wherever they are. */
export interface UserCommands {
  /** Resolves once the command is published to every node; rejects when Redis cannot take it. */
  disconnect(user: string, reason: string | undefined): Promise<void>;
  /** Stores and announces the revocation; resolves with it as stored. */
  revoke(user: string, before: number): Promise<Revocation>;
}

export interface PresenceSource {
  enabledFor(channel: string): boolean;
  read(channel: string, stats: boolean): Promise<PresenceResult>;
}

export interface ClusterState {
  nodes(): Promise<NodeStatus[]>;
  channels(prefix: string, cursor: string | null, limit: number): Promise<ChannelPage>;
}

export interface ServerApiMetrics {
  httpRequest(route: string, status: number): void;
}

export interface ServerApiOptions {
  readonly publishKey: string;
  /** How far in the future `before` may lie: a revocation then holds until before + this (ms). */
  readonly revocationTtlMs: number;
}

export interface ServerApiDeps {
  readonly users: UserCommands;
  readonly presence: PresenceSource;
  readonly cluster: ClusterState;
  readonly metrics: ServerApiMetrics;
  readonly log: Logger;
  readonly clock?: Clock;
}

type Refuse = (status: string, code: ErrorCode, message: string, close?: boolean) => void;

const UNAUTHORIZED = "publish key required: Authorization: Bearer <PUBLISH_KEY>";
const USER_RULE = `user must be 1-${MAX_SUB_LENGTH} characters of A-Z a-z 0-9 _ - . @ | = + / (a token's sub)`;
const CHANNEL_RULE = `channel must be 1-${MAX_CHANNEL_LENGTH} characters of A-Z a-z 0-9 _ - . : @ | = + /`;

/** A boolean query flag: absent, `0` or `false` is false; `1` or `true` is true; anything else null. */
function flag(raw: string | undefined): boolean | null {
  if (raw === undefined || raw === "" || raw === "0" || raw === "false") return false;
  if (raw === "1" || raw === "true") return true;
  return null;
}

export function attachServerApi(app: TemplatedApp, options: ServerApiOptions, deps: ServerApiDeps): void {
  const authorized = apiKeyCheck(options.publishKey);
  const clock = deps.clock ?? Date;

  /** Answers for `route`, counted in gateway_http_requests_total. */
  const responder = (res: HttpResponse, state: ResponseGuard, route: string): { ok: (body: unknown) => void; refuse: Refuse; failed: (err: unknown, what: string) => void } => ({
    ok: (body) => {
      if (!state.aborted) deps.metrics.httpRequest(route, 200);
      sendJson(res, state, "200 OK", body);
    },
    refuse: (status, code, message, close = false) => {
      if (!state.aborted) deps.metrics.httpRequest(route, Number(status.slice(0, 3)));
      sendError(res, state, status, { code, message }, close);
    },
    failed: (err, what) => {
      deps.log.error({ err, route }, `${what} failed`);
      if (!state.aborted) deps.metrics.httpRequest(route, 503);
      sendError(res, state, "503 Service Unavailable", { code: ErrorCodes.unavailable.code, message: `${what} unavailable (Redis); retry` });
    },
  });

  /**
   * A POST with a small JSON object body: key first, then the declared
   * length, then the body. Unread bodies are abandoned by closing the
   * connection after the answer.
   */
  const postJson = (path: string, route: string, handle: (body: Record<string, unknown>, answer: ReturnType<typeof responder>) => void): void => {
    app.post(path, (res, req) => {
      const state = guard(res);
      const answer = responder(res, state, route);
      const authorization = req.getHeader("authorization");
      const declaredLength = req.getHeader("content-length");
      if (!authorized(authorization)) return answer.refuse("401 Unauthorized", ErrorCodes.unauthorized.code, UNAUTHORIZED, true);
      if (declaredLength !== "" && Number(declaredLength) > SERVER_API_MAX_BODY_BYTES) {
        return answer.refuse("413 Payload Too Large", ErrorCodes.payloadTooLarge.code, `body larger than ${SERVER_API_MAX_BODY_BYTES} bytes`, true);
      }
      readBody(res, SERVER_API_MAX_BODY_BYTES, (result) => {
        if (!result.ok) return answer.refuse("413 Payload Too Large", ErrorCodes.payloadTooLarge.code, `body larger than ${SERVER_API_MAX_BODY_BYTES} bytes`, true);
        let body: unknown;
        try {
          body = JSON.parse(result.body.toString("utf8"));
        } catch {
          return answer.refuse("400 Bad Request", ErrorCodes.badRequest.code, "body is not valid JSON");
        }
        if (!isPlainObject(body)) return answer.refuse("400 Bad Request", ErrorCodes.badRequest.code, "body must be a JSON object");
        handle(body, answer);
      });
    });
  };

  postJson("/v1/disconnect", "disconnect", (body, answer) => {
    const { user, reason } = body;
    if (typeof user !== "string" || !isValidSub(user)) return answer.refuse("400 Bad Request", ErrorCodes.badRequest.code, USER_RULE);
    if (reason !== undefined && (typeof reason !== "string" || !isValidDisconnectReason(reason))) {
      return answer.refuse("400 Bad Request", ErrorCodes.badRequest.code, `reason must be 1-${MAX_DISCONNECT_REASON_BYTES} bytes of UTF-8 without control characters`);
    }
    deps.users.disconnect(user, reason).then(
      () => answer.ok(reason === undefined ? { user } : { user, reason }),
      (err: unknown) => answer.failed(err, "disconnect"),
    );
  });

  postJson("/v1/revoke", "revoke", (body, answer) => {
    const { user } = body;
    const now = clock.now();
    const before = body["before"] ?? now;
    if (typeof user !== "string" || !isValidSub(user)) return answer.refuse("400 Bad Request", ErrorCodes.badRequest.code, USER_RULE);
    if (typeof before !== "number" || !Number.isSafeInteger(before) || before < 0 || before > now + options.revocationTtlMs) {
      return answer.refuse("400 Bad Request", ErrorCodes.badRequest.code, `before must be an integer time in ms since the epoch, at most ${options.revocationTtlMs} ms from now`);
    }
    deps.users.revoke(user, before).then(
      (revocation) => answer.ok(revocation),
      (err: unknown) => answer.failed(err, "revoke"),
    );
  });

  /** A GET with the key checked first; `handle` reads the query while req is valid. */
  const getAuthorized = (path: string, route: string, handle: (query: (name: string) => string | undefined, answer: ReturnType<typeof responder>) => void): void => {
    app.get(path, (res, req) => {
      const state = guard(res);
      const answer = responder(res, state, route);
      if (!authorized(req.getHeader("authorization"))) return answer.refuse("401 Unauthorized", ErrorCodes.unauthorized.code, UNAUTHORIZED);
      // req is only valid inside this callback: handlers read the query synchronously.
      handle((name) => req.getQuery(name), answer);
    });
  };

  getAuthorized("/v1/presence", "presence", (query, answer) => {
    const channel = query("channel") ?? "";
    const stats = flag(query("stats"));
    if (!isValidChannelName(channel)) return answer.refuse("400 Bad Request", ErrorCodes.badRequest.code, CHANNEL_RULE);
    if (stats === null) return answer.refuse("400 Bad Request", ErrorCodes.badRequest.code, "stats must be 1, true, 0 or false");
    if (!deps.presence.enabledFor(channel)) return answer.refuse("400 Bad Request", ErrorCodes.presenceDisabled.code, `presence is not enabled for ${channel} (PRESENCE_NAMESPACES)`);
    deps.presence.read(channel, stats).then(
      (presence) => answer.ok(presence),
      (err: unknown) => answer.failed(err, "presence"),
    );
  });

  getAuthorized("/v1/channels", "channels", (query, answer) => {
    const prefix = query("prefix") ?? "";
    const cursor = query("cursor") ?? "";
    const limitRaw = query("limit") ?? "";
    const limit = limitRaw === "" ? CHANNELS_DEFAULT_LIMIT : /^\d{1,5}$/.test(limitRaw) ? Number(limitRaw) : NaN;
    if (prefix !== "" && !isValidChannelName(prefix)) return answer.refuse("400 Bad Request", ErrorCodes.badRequest.code, `prefix must be empty or ${CHANNEL_RULE.slice("channel must be ".length)}`);
    if (cursor !== "" && !isValidChannelName(cursor)) return answer.refuse("400 Bad Request", ErrorCodes.badRequest.code, "cursor must be the cursor of the previous page");
    if (!(limit >= 1 && limit <= CHANNELS_MAX_LIMIT)) return answer.refuse("400 Bad Request", ErrorCodes.badRequest.code, `limit must be an integer from 1 to ${CHANNELS_MAX_LIMIT}`);
    deps.cluster.channels(prefix, cursor === "" ? null : cursor, limit).then(
      (page) => answer.ok(page),
      (err: unknown) => answer.failed(err, "channels"),
    );
  });

  getAuthorized("/v1/info", "info", (_query, answer) => {
    deps.cluster.nodes().then(
      (nodes) => answer.ok({ nodes }),
      (err: unknown) => answer.failed(err, "info"),
    );
  });
}
