import jwt from "jsonwebtoken";
import { TEST_JWT_SECRET } from "./gateway-node.js";

export interface TokenClaims {
  readonly sub?: string;
  readonly channels?: readonly string[];
  readonly [claim: string]: unknown;
}

/** An HS256 token for the test secret; `expiresInSeconds` defaults to an hour. */
export function token(claims: TokenClaims, options: jwt.SignOptions = {}): string {
  return jwt.sign({ ...claims }, TEST_JWT_SECRET, { algorithm: "HS256", expiresIn: 3600, ...options });
}
