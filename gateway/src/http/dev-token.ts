/**
 * GET /v1/dev/token?sub=alice[&ttl=600] → `{token, sub, expiresAt}`: a token
 * for the live page under `npm start`. Anyone who can reach the route can act
 * as any user, so it exists only in development (GATEWAY_ENV=development) with
 * an HMAC secret; otherwise it answers exactly like an unknown route (404), so
 * a production node does not even reveal that it knows the route.
 */

import jwt from "jsonwebtoken";
import type { HttpResponse, TemplatedApp } from "uWebSockets.js";
import type { Logger } from "pino";
import { isValidSub, MAX_SUB_LENGTH } from "../../../shared/src/channels.js";
import { ErrorCodes } from "../../../shared/src/codes.js";
import { guard, sendError, sendJson } from "./responses.js";

export const DEV_TOKEN_PATH = "/v1/dev/token";

export interface DevTokenOptions {
  /** True only for GATEWAY_ENV=development; false makes the route a 404. */
  readonly enabled: boolean;
  /** The node's HMAC secret (JWT_SECRET); null when it verifies with a public key, which disables the route. */
  readonly secret: string | null;
  readonly algorithm?: "HS256" | "HS384" | "HS512";
  /** Default lifetime; `ttl` in the query may ask for 10..3600 s. Default 600 s. */
  readonly ttlSeconds?: number;
  /** Stamped into the token when the node enforces them (JWT_ISSUER, JWT_AUDIENCE). */
  readonly issuer?: string | undefined;
  readonly audience?: readonly string[] | undefined;
  readonly log: Logger;
}

const MIN_TTL_S = 10;
const MAX_TTL_S = 3600;

export interface DevTokenGrant {
  readonly token: string;
  readonly sub: string;
  readonly expiresAt: number;
}

/** Signs a token for `sub`, granting nothing beyond the public channels and its own. */
export function mintDevToken(options: DevTokenOptions & { readonly secret: string }, sub: string, ttlSeconds: number): DevTokenGrant {
  const signOptions: jwt.SignOptions = { algorithm: options.algorithm ?? "HS256", expiresIn: ttlSeconds };
  if (options.issuer !== undefined) signOptions.issuer = options.issuer;
  if (options.audience !== undefined && options.audience.length > 0) signOptions.audience = options.audience[0];
  const token = jwt.sign({ sub, dev: true }, options.secret, signOptions);
  const payload = jwt.decode(token) as { exp: number };
  return { token, sub, expiresAt: payload.exp * 1000 };
}

function notFound(res: HttpResponse): void {
  sendError(res, guard(res), "404 Not Found", { code: ErrorCodes.notFound.code, message: "no such route" });
}

export function attachDevTokenRoute(app: TemplatedApp, options: DevTokenOptions): void {
  const secret = options.secret;
  if (!options.enabled || secret === null) {
    // Registered anyway, so a later catch-all under /v1/ can never expose it.
    app.any(DEV_TOKEN_PATH, (res) => notFound(res));
    return;
  }
  const signer = { ...options, secret };
  const defaultTtl = options.ttlSeconds ?? 600;
  app.get(DEV_TOKEN_PATH, (res, req) => {
    // req is only valid inside this callback.
    const params = new URLSearchParams(req.getQuery() ?? "");
    const state = guard(res);
    const sub = params.get("sub") ?? "";
    if (!isValidSub(sub)) {
      sendError(res, state, "400 Bad Request", { code: ErrorCodes.badRequest.code, message: `sub must be 1-${MAX_SUB_LENGTH} characters of A-Z a-z 0-9 _ - . @ | = + /` });
      return;
    }
    const ttlRaw = params.get("ttl");
    const ttl = ttlRaw === null ? defaultTtl : Number(ttlRaw);
    if (!Number.isInteger(ttl) || ttl < MIN_TTL_S || ttl > MAX_TTL_S) {
      sendError(res, state, "400 Bad Request", { code: ErrorCodes.badRequest.code, message: `ttl must be an integer between ${MIN_TTL_S} and ${MAX_TTL_S}` });
      return;
    }
    const grant = mintDevToken(signer, sub, ttl);
    options.log.debug({ sub, ttl }, "development token issued");
    sendJson(res, state, "200 OK", grant);
  });
  app.any(DEV_TOKEN_PATH, (res) => {
    sendError(res, guard(res), "405 Method Not Allowed", { code: ErrorCodes.badRequest.code, message: "use GET" });
  });
}
