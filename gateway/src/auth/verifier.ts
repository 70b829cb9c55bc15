/**
 * JWT verification: token string → Principal, or a typed failure.
 *
 * Algorithms are pinned by configuration (see JwsVerifier), so a token that
 * names `none`, or an HS* token signed with our RSA public key as its
 * "secret", fails on the algorithm check before any signature math. The
 * registered claims are checked as jsonwebtoken 9 checks them (`nbf`, `exp`
 * with the clock tolerance, `aud`, `iss`), then ours: `sub`, `iat`, the
 * lifetime bound and the grants.
 */

import { createSecretKey, type KeyObject } from "node:crypto";
import { grantProblem, isValidSub, MAX_SUB_LENGTH } from "../../../shared/src/channels.js";
import type { JwtConfig } from "../config.js";
import type { Clock } from "../time/clock.js";
import { JwsVerifier } from "./jws.js";

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

/** The grants of a principal without any: one array for all of them, not one per connection. */
const NO_GRANTS: readonly string[] = Object.freeze([]);

/** The grants of a `channels` claim, or why it is refused. */
function grantsFrom(claim: unknown): { readonly grants: readonly string[] } | { readonly problem: string } {
  if (claim === undefined || (Array.isArray(claim) && claim.length === 0)) return { grants: NO_GRANTS };
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

/** The parsed payload, when it is a JSON object. */
function claimsOf(payload: string): Record<string, unknown> | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    // A signed payload that is not JSON is the issuer's mistake; the caller answers invalid_claims.
    return null;
  }
  return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
}

export class JwtVerifier {
  private readonly jws: JwsVerifier;
  private readonly audience: ReadonlySet<string> | null;

  constructor(
    private readonly config: JwtConfig,
    private readonly clock: Clock = Date,
  ) {
    // Built once: a key object per call is what made jsonwebtoken slow with a string secret.
    const key: KeyObject = typeof config.key === "string" ? createSecretKey(Buffer.from(config.key, "utf8")) : config.key;
    this.jws = new JwsVerifier(key, config.algorithms);
    this.audience = config.audience === undefined ? null : new Set(config.audience);
  }

  verify(token: string | undefined): VerifyResult {
    if (token === undefined || token.length === 0) return failure("missing", "token required");
    if (token.length > MAX_TOKEN_LENGTH) return failure("malformed", "token too long");

    const signed = this.jws.verify(token);
    if (!signed.ok) return failure(signed.reason, signed.message);
    const payload = claimsOf(signed.payload);
    if (payload === null) return failure("invalid_claims", "token payload must be a JSON object");

    const registered = this.registeredClaimsProblem(payload);
    if (registered !== null) return registered;

    const sub = payload["sub"];
    if (typeof sub !== "string" || sub.length === 0) return failure("invalid_claims", "token has no sub");
    if (!isValidSub(sub)) return failure("invalid_claims", `token sub must be 1-${MAX_SUB_LENGTH} characters of A-Z a-z 0-9 _ - . @ | = + /`);
    const iat = payload["iat"];
    if (iat !== undefined && (typeof iat !== "number" || !Number.isFinite(iat))) return failure("invalid_claims", "token iat must be a number");
    // registeredClaimsProblem() let only a number or nothing through.
    const exp = payload["exp"] as number | undefined;

    const lifetime = this.lifetimeProblem(exp, iat);
    if (lifetime !== null) return failure("lifetime", lifetime);

    const channels = grantsFrom(payload["channels"]);
    if ("problem" in channels) return failure("invalid_claims", channels.problem);

    const expiresAt = exp !== undefined ? exp * 1000 : null;
    const issuedAt = iat !== undefined ? iat * 1000 : null;
    return { ok: true, principal: { sub, channels: channels.grants, expiresAt, issuedAt } };
  }

  /**
   * `nbf`, `exp`, `aud` and `iss`, in jsonwebtoken's order and with its
   * arithmetic: whole seconds of now, the tolerance added to both `nbf` and
   * `exp`, and a token with `exp` at or before now expired.
   */
  private registeredClaimsProblem(payload: Readonly<Record<string, unknown>>): VerifyResult | null {
    const nowSeconds = Math.floor(this.clock.now() / 1000);
    const tolerance = this.config.clockToleranceSeconds;
    const nbf = payload["nbf"];
    if (nbf !== undefined) {
      if (typeof nbf !== "number") return failure("malformed", "token nbf must be a number");
      if (nbf > nowSeconds + tolerance) return failure("not_yet_valid", "token not yet valid");
    }
    const exp = payload["exp"];
    if (exp !== undefined) {
      if (typeof exp !== "number") return failure("malformed", "token exp must be a number");
      if (nowSeconds >= exp + tolerance) return failure("expired", "token expired");
    }
    if (this.audience !== null) {
      const aud = payload["aud"];
      const audiences = this.audience;
      const matches = Array.isArray(aud) ? aud.some((one) => typeof one === "string" && audiences.has(one)) : typeof aud === "string" && audiences.has(aud);
      if (!matches) return failure("audience", "token audience not accepted");
    }
    if (this.config.issuer !== undefined && payload["iss"] !== this.config.issuer) return failure("issuer", "token issuer not accepted");
    return null;
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
