import { createPublicKey, generateKeyPairSync } from "node:crypto";
import jwt from "jsonwebtoken";
import { describe, expect, it } from "vitest";
import { JwtVerifier, tokenFrom } from "../../src/auth/verifier.js";
import { badTokens, hsRsConfusionToken } from "../support/bad-tokens.js";

const secret = "unit-secret-0123456789abcdef";
const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();
const DAY = 86_400;

/** As a production node configures it: lifetimes bounded to a day. */
const hs = new JwtVerifier({ key: secret, algorithms: ["HS256"], issuer: "gw-tests", audience: ["gateway"], clockToleranceSeconds: 0, maxLifetimeSeconds: DAY });
const rs = new JwtVerifier({ key: createPublicKey(publicPem), algorithms: ["RS256"], issuer: undefined, audience: undefined, clockToleranceSeconds: 0, maxLifetimeSeconds: DAY });
/** As a development node configures it: no lifetime rules. */
const dev = new JwtVerifier({ key: secret, algorithms: ["HS256"], issuer: undefined, audience: undefined, clockToleranceSeconds: 0, maxLifetimeSeconds: null });

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

describe("JwtVerifier", () => {
  it("accepts a valid token and exposes sub, grants, expiry and issue time", () => {
    const iat = nowSeconds();
    const exp = iat + 120;
    const result = hs.verify(jwt.sign({ sub: "alice", channels: ["odds:*", "vip"], iat, exp, iss: "gw-tests", aud: "gateway" }, secret));
    expect(result).toEqual({ ok: true, principal: { sub: "alice", channels: ["odds:*", "vip"], expiresAt: exp * 1000, issuedAt: iat * 1000 } });
  });

  for (const bad of badTokens({ secret, rsaPrivateKey: privateKey, rsaPublicKeyPem: publicPem, audience: "gateway", issuer: "gw-tests" })) {
    it(`refuses ${bad.name} as ${bad.reason}`, () => {
      const result = hs.verify(bad.token);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.reason).toBe(bad.reason);
    });
  }

  it("accepts RS256 with the public key and refuses an HS256 token signed with that public key", () => {
    const good = rs.verify(jwt.sign({ sub: "bob" }, privateKey, { algorithm: "RS256", expiresIn: 60 }));
    expect(good.ok).toBe(true);
    const confused = rs.verify(hsRsConfusionToken(publicPem));
    expect(confused).toMatchObject({ ok: false, reason: "algorithm" });
  });

  it("in production, accepts a lifetime of exactly the maximum, issued long ago or without iat", () => {
    const now = nowSeconds();
    const claims = { sub: "alice", iss: "gw-tests", aud: "gateway" };
    expect(hs.verify(jwt.sign({ ...claims, iat: now, exp: now + DAY }, secret)).ok).toBe(true);
    expect(hs.verify(jwt.sign({ ...claims, iat: now - DAY + 60, exp: now + 60 }, secret)).ok).toBe(true);
    expect(hs.verify(jwt.sign({ ...claims, exp: now + DAY - 5 }, secret, { noTimestamp: true })).ok).toBe(true);
    // Issued more than a day before it expires, however little is left of it.
    expect(hs.verify(jwt.sign({ ...claims, iat: now - DAY - 60, exp: now + 60 }, secret))).toMatchObject({ ok: false, reason: "lifetime" });
  });

  it("in development, accepts tokens without exp and with long lifetimes", () => {
    const now = nowSeconds();
    expect(dev.verify(jwt.sign({ sub: "alice" }, secret))).toMatchObject({ ok: true, principal: { expiresAt: null } });
    expect(dev.verify(jwt.sign({ sub: "alice", exp: now + 30 * DAY }, secret)).ok).toBe(true);
  });

  it("accepts an exact grant of another user's channel, and subs of the documented set", () => {
    const exp = nowSeconds() + 60;
    const result = dev.verify(jwt.sign({ sub: "auth0|abc.DEF_12-x@y=z+w/v", channels: ["user:bob", "odds:*"], exp }, secret));
    expect(result).toMatchObject({ ok: true, principal: { sub: "auth0|abc.DEF_12-x@y=z+w/v", channels: ["user:bob", "odds:*"] } });
    expect(dev.verify(jwt.sign({ sub: "a".repeat(123), exp }, secret)).ok).toBe(true);
  });

  it("takes the bearer header before the query parameter", () => {
    expect(tokenFrom("Bearer abc.def.ghi", "zzz")).toBe("abc.def.ghi");
    expect(tokenFrom("", "zzz")).toBe("zzz");
    expect(tokenFrom("Basic Zm9vOmJhcg==", "")).toBeUndefined();
  });
});
