/**
 * JWT verification: token string → Principal, or a typed failure.
 *
 * Algorithms are pinned by configuration and handed to jsonwebtoken, so a token
 * that names `none`, or an HS* token signed with our RSA public key as its
 * "secret", fails on the algorithm check before any signature math.
 */

import jwt from "jsonwebtoken";
import { isValidChannelName, MAX_CHANNEL_LENGTH, userChannel } from "../../../shared/src/channels.js";
import type { JwtConfig } from "../config.js";

export interface Principal {
  readonly sub: string;
  /** Claim-granted channel patterns: exact names or prefixes ending in `*`. */
  readonly channels: readonly string[];
  /** `exp` in ms since the epoch, or null when the token never expires. */
  readonly expiresAt: number | null;
}

export type AuthFailureReason =
  | "missing"
  | "malformed"
  | "bad_signature"
  | "algorithm"
  | "expired"
  | "not_yet_valid"
  | "audience"
  | "issuer"
  | "invalid_claims";

export const AUTH_FAILURE_REASONS: readonly AuthFailureReason[] = [
  "missing",
  "malformed",
  "bad_signature",
  "algorithm",
  "expired",
  "not_yet_valid",
  "audience",
  "issuer",
  "invalid_claims",
];

export type VerifyResult =
  | { readonly ok: true; readonly principal: Principal }
  | { readonly ok: false; readonly reason: AuthFailureReason; readonly message: string };

const MAX_TOKEN_LENGTH = 8192;
const MAX_GRANTS = 256;

function failure(reason: AuthFailureReason, message: string): VerifyResult {
  return { ok: false, reason, message };
}

function classify(err: unknown): VerifyResult {
  if (err instanceof jwt.TokenExpiredError) return failure("expired", "token expired");
  if (err instanceof jwt.NotBeforeError) return failure("not_yet_valid", "token not yet valid");
  const message = err instanceof Error ? err.message : String(err);
  if (message.startsWith("jwt audience invalid")) return failure("audience", "token audience not accepted");
  if (message.startsWith("jwt issuer invalid")) return failure("issuer", "token issuer not accepted");
  if (message === "invalid algorithm" || message === "jwt signature is required" || message.includes("must be a")) {
    return failure("algorithm", "token algorithm not accepted");
  }
  if (message === "invalid signature") return failure("bad_signature", "token signature invalid");
  return failure("malformed", "token malformed");
}

function grantsFrom(claim: unknown): string[] | null {
  if (claim === undefined) return [];
  if (!Array.isArray(claim) || claim.length > MAX_GRANTS) return null;
  const grants: string[] = [];
  for (const item of claim) {
    if (typeof item !== "string") return null;
    const base = item.endsWith("*") ? item.slice(0, -1) : item;
    // A bare "*" would grant every channel, other users' personal ones included.
    if (base.length === 0 || base.length > MAX_CHANNEL_LENGTH || !isValidChannelName(base)) return null;
    grants.push(item);
  }
  return grants;
}

export class JwtVerifier {
  private readonly options: jwt.VerifyOptions & { complete: false };

  constructor(private readonly config: JwtConfig) {
    this.options = {
      algorithms: [...config.algorithms],
      clockTolerance: config.clockToleranceSeconds,
      complete: false,
      ...(config.issuer !== undefined ? { issuer: config.issuer } : {}),
      ...(config.audience !== undefined ? { audience: [...config.audience] as [string, ...string[]] } : {}),
    };
  }

  verify(token: string | undefined): VerifyResult {
    if (token === undefined || token.length === 0) return failure("missing", "token required");
    if (token.length > MAX_TOKEN_LENGTH) return failure("malformed", "token too long");

    let payload: string | jwt.JwtPayload;
    try {
      payload = jwt.verify(token, this.config.key, this.options);
    } catch (err) {
      return classify(err);
    }
    if (typeof payload === "string") return failure("invalid_claims", "token payload must be a JSON object");

    const sub = payload.sub;
    if (typeof sub !== "string" || sub.length === 0) return failure("invalid_claims", "token has no sub");
    if (!isValidChannelName(userChannel(sub))) return failure("invalid_claims", "token sub has unsupported characters");

    const channels = grantsFrom(payload["channels"]);
    if (channels === null) return failure("invalid_claims", "channels claim must be a list of channel names or prefixes ending in *");

    const expiresAt = typeof payload.exp === "number" ? payload.exp * 1000 : null;
    return { ok: true, principal: { sub, channels, expiresAt } };
  }
}

/** The credential of an `Authorization: Bearer …` header, if it is one. */
export function bearerToken(authorizationHeader: string): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(authorizationHeader)?.[1];
}

/** The token from `Authorization: Bearer …`, else from the `token` query parameter. */
export function tokenFrom(authorizationHeader: string, queryToken: string): string | undefined {
  return bearerToken(authorizationHeader) ?? (queryToken.length > 0 ? queryToken : undefined);
}
