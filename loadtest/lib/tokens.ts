/**
 * Tokens for load generators: HS256 JWTs minted without a library, a
 * distinct user each, valid for an hour (production accepts at most a day).
 * A generator mints up to 19k of them at start-up.
 */

import { createHmac } from "node:crypto";

const TOKEN_TTL_S = 3600;

function base64url(value: string): string {
  return Buffer.from(value).toString("base64url");
}

export function mintToken(secret: string, sub: string, nowS: number): string {
  const head = `${base64url('{"alg":"HS256","typ":"JWT"}')}.${base64url(JSON.stringify({ sub, iat: nowS, exp: nowS + TOKEN_TTL_S }))}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}
