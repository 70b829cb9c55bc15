/**
 * Every way a token can be wrong, built against a given HMAC secret and RSA
 * key pair; shared by the verifier unit test and the upgrade test, so both
 * layers refuse the same list.
 */

import { createHmac, type KeyObject } from "node:crypto";
import jwt from "jsonwebtoken";
import type { AuthFailureReason } from "../../src/auth/verifier.js";

export interface BadToken {
  readonly name: string;
  readonly token: string | undefined;
  readonly reason: AuthFailureReason;
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** Hand-rolled HS256, for headers jsonwebtoken refuses to produce. */
function forgeHs256(header: object, payload: object, secret: string | Buffer): string {
  const body = `${b64(header)}.${b64(payload)}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

export interface BadTokenKeys {
  readonly secret: string;
  readonly rsaPrivateKey: KeyObject;
  readonly rsaPublicKeyPem: string;
  readonly audience?: string;
  readonly issuer?: string;
}

export function badTokens(keys: BadTokenKeys): BadToken[] {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: "mallory", ...(keys.audience ? { aud: keys.audience } : {}), ...(keys.issuer ? { iss: keys.issuer } : {}) };
  const sign = (payload: object, options: jwt.SignOptions = {}): string => jwt.sign(payload, keys.secret, { algorithm: "HS256", ...options });
  const list: BadToken[] = [
    { name: "missing", token: undefined, reason: "missing" },
    { name: "garbage", token: "not-a-jwt", reason: "malformed" },
    { name: "three garbage parts", token: "a.b.c", reason: "malformed" },
    { name: "expired", token: sign({ ...claims, exp: now - 3600 }), reason: "expired" },
    { name: "not yet valid", token: sign({ ...claims, nbf: now + 3600, exp: now + 7200 }), reason: "not_yet_valid" },
    { name: "wrong signature", token: jwt.sign({ ...claims, exp: now + 60 }, "another-secret-of-enough-length", { algorithm: "HS256" }), reason: "bad_signature" },
    { name: "alg none", token: `${b64({ alg: "none", typ: "JWT" })}.${b64({ ...claims, exp: now + 60 })}.`, reason: "algorithm" },
    { name: "missing sub", token: sign({ exp: now + 60, ...(keys.audience ? { aud: keys.audience } : {}), ...(keys.issuer ? { iss: keys.issuer } : {}) }), reason: "invalid_claims" },
    { name: "empty sub", token: sign({ ...claims, sub: "", exp: now + 60 }), reason: "invalid_claims" },
    { name: "sub with a space", token: sign({ ...claims, sub: "a b", exp: now + 60 }), reason: "invalid_claims" },
    { name: "channels claim not a list", token: sign({ ...claims, channels: "race", exp: now + 60 }), reason: "invalid_claims" },
    { name: "channels claim granting everything", token: sign({ ...claims, channels: ["*"], exp: now + 60 }), reason: "invalid_claims" },
    // Wildcards never reach personal channels, and end at a namespace boundary.
    { name: "a wildcard grant over user:", token: sign({ ...claims, channels: ["user:*"], exp: now + 60 }), reason: "invalid_claims" },
    { name: "a wildcard grant not at a namespace boundary", token: sign({ ...claims, channels: ["vip*"], exp: now + 60 }), reason: "invalid_claims" },
    { name: "a wildcard grant u*", token: sign({ ...claims, channels: ["u*"], exp: now + 60 }), reason: "invalid_claims" },
    // `sub=alice:orders` would own `user:alice:orders`.
    { name: "sub with a colon", token: sign({ ...claims, sub: "alice:orders", exp: now + 60 }), reason: "invalid_claims" },
    { name: "sub of 124 characters", token: sign({ ...claims, sub: "a".repeat(124), exp: now + 60 }), reason: "invalid_claims" },
    { name: "iat that is not a number", token: forgeHs256({ alg: "HS256", typ: "JWT" }, { ...claims, iat: "yesterday", exp: now + 60 }, keys.secret), reason: "invalid_claims" },
    // A production node (the default) bounds every token's lifetime, at most a day.
    { name: "no exp", token: sign({ ...claims }), reason: "lifetime" },
    { name: "a lifetime of two days", token: sign({ ...claims, iat: now, exp: now + 2 * 86_400 }), reason: "lifetime" },
    { name: "two days left and no iat", token: sign({ ...claims, exp: now + 2 * 86_400 }, { noTimestamp: true }), reason: "lifetime" },
    { name: "an iat in the future hiding two days left", token: sign({ ...claims, iat: now + 86_400, exp: now + 2 * 86_400 }), reason: "lifetime" },
    { name: "RS256 token when only HS256 is pinned", token: jwt.sign({ ...claims, exp: now + 60 }, keys.rsaPrivateKey, { algorithm: "RS256" }), reason: "algorithm" },
    { name: "HS512 when only HS256 is pinned", token: sign({ ...claims, exp: now + 60 }, { algorithm: "HS512" }), reason: "algorithm" },
  ];
  if (keys.audience !== undefined) {
    list.push({ name: "wrong audience", token: sign({ ...claims, aud: "someone-else", exp: now + 60 }), reason: "audience" });
    list.push({ name: "no audience", token: sign({ sub: "mallory", exp: now + 60, ...(keys.issuer ? { iss: keys.issuer } : {}) }), reason: "audience" });
  }
  if (keys.issuer !== undefined) {
    list.push({ name: "wrong issuer", token: sign({ ...claims, iss: "evil", exp: now + 60 }), reason: "issuer" });
  }
  return list;
}

/** HS256 signed with the RSA public key as the HMAC secret: the classic confusion attack. */
export function hsRsConfusionToken(rsaPublicKeyPem: string): string {
  return forgeHs256({ alg: "HS256", typ: "JWT" }, { sub: "mallory", exp: Math.floor(Date.now() / 1000) + 60 }, Buffer.from(rsaPublicKeyPem));
}
