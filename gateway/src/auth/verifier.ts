/**
 * JWT verification: token string → Principal, or a typed failure.
 *
 * Algorithms are pinned by configuration and handed to jsonwebtoken, so a token
 * that names `none`, or an HS* token signed with our RSA public key as its
 * "secret", fails on the algorithm check before any signature math.
 */

import jwt from "jsonwebtoken";
import { grantProblem, isValidSub, MAX_SUB_LENGTH } from "../../../shared/src/channels.js";
import type { JwtConfig } from "../config.js";
import type { Clock } from "../time/clock.js";

export interface Principal {
  readonly sub: string;
  /** Claim-granted channels: exact names or namespace wildcards ending in `:*` (see grantMatches). */
  readonly channels: readonly string[];
  /** `exp` in ms since the epoch, or null when the token never expires (development only). */
  readonly expiresAt: number | null;
  /** `iat` in ms since the epoch, or null when the token does not say; orders refreshes. */
  readonly issuedAt: number | null;
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
  | "invalid_claims"
  | "lifetime"
  | "revoked";

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
  "lifetime",
  "revoked",
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

/** The grants of a `channels` claim, or why it is refused. */
function grantsFrom(claim: unknown): { readonly grants: string[] } | { readonly problem: string } {
  if (claim === undefined) return { grants: [] };
  if (!Array.isArray(claim) || claim.length > MAX_GRANTS) return { problem: `channels claim must be a list of at most ${MAX_GRANTS} grants` };
  const grants: string[] = [];
  for (const item of claim) {
    if (typeof item !== "string") return { problem: "channels claim must list strings" };
    // The entry itself stays out of the message: it may be long, and it is the token's.
    const problem = grantProblem(item);
    if (problem !== null) return { problem: `a channels grant ${problem}; grants are channel names or namespace wildcards like odds:*` };
    grants.push(item);
  }
  return { grants };
}

export class JwtVerifier {
  private readonly options: jwt.VerifyOptions & { complete: false };

  constructor(
    private readonly config: JwtConfig,
    private readonly clock: Clock = Date,
  ) {
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
    if (!isValidSub(sub)) return failure("invalid_claims", `token sub must be 1-${MAX_SUB_LENGTH} characters of A-Z a-z 0-9 _ - . @ | = + /`);
    if (payload.iat !== undefined && (typeof payload.iat !== "number" || !Number.isFinite(payload.iat))) return failure("invalid_claims", "token iat must be a number");

    const lifetime = this.lifetimeProblem(payload.exp, payload.iat);
    if (lifetime !== null) return failure("lifetime", lifetime);

    const channels = grantsFrom(payload["channels"]);
    if ("problem" in channels) return failure("invalid_claims", channels.problem);

    const expiresAt = typeof payload.exp === "number" ? payload.exp * 1000 : null;
    const issuedAt = typeof payload.iat === "number" ? payload.iat * 1000 : null;
    return { ok: true, principal: { sub, channels: channels.grants, expiresAt, issuedAt } };
  }

  /**
   * With a maximum lifetime (production), a token must expire, and within
   * that long of being issued: `exp` − `iat`, counted from now when `iat` is
   * absent or in the future, so a future `iat` cannot hide a long remaining
   * life. The clock tolerance covers an issuer's skew.
   */
  private lifetimeProblem(exp: number | undefined, iat: number | undefined): string | null {
    const max = this.config.maxLifetimeSeconds;
    if (max === null) return null;
    if (exp === undefined) return "token must expire: exp is required";
    const nowSeconds = this.clock.now() / 1000;
    const from = iat === undefined ? nowSeconds : Math.min(iat, nowSeconds);
    if (exp - from > max + this.config.clockToleranceSeconds) return `token lifetime (exp - iat) is over the ${max} s allowed`;
    return null;
  }
}

/** The error code a client gets for a refused token: `token_revoked` for a revoked one, `invalid_token` otherwise. */
export function authErrorCode(reason: AuthFailureReason): "token_revoked" | "invalid_token" {
  return reason === "revoked" ? "token_revoked" : "invalid_token";
}

/** Whether tokens of a user issued before some time are revoked (POST /v1/revoke). */
export interface RevokedTokens {
  isRevoked(sub: string, issuedAt: number | null): boolean;
}

/** A verifier that also refuses revoked tokens: at the upgrade, the Socket.IO handshake and refresh alike. */
export class RevocationCheckingVerifier {
  constructor(
    private readonly verifier: { verify(token: string | undefined): VerifyResult },
    private readonly revoked: RevokedTokens,
  ) {}

  verify(token: string | undefined): VerifyResult {
    const verdict = this.verifier.verify(token);
    if (verdict.ok && this.revoked.isRevoked(verdict.principal.sub, verdict.principal.issuedAt)) return failure("revoked", "token revoked: get a new one");
    return verdict;
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
