import { createPublicKey, generateKeyPairSync } from "node:crypto";
import jwt from "jsonwebtoken";
import { describe, expect, it } from "vitest";
import { JwtVerifier, tokenFrom } from "../../src/auth/verifier.js";
import { badTokens, hsRsConfusionToken } from "../support/bad-tokens.js";

const secret = "unit-secret-0123456789abcdef";
const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();

const hs = new JwtVerifier({ key: secret, algorithms: ["HS256"], issuer: "gw-tests", audience: ["gateway"], clockToleranceSeconds: 0 });
const rs = new JwtVerifier({ key: createPublicKey(publicPem), algorithms: ["RS256"], issuer: undefined, audience: undefined, clockToleranceSeconds: 0 });

describe("JwtVerifier", () => {
  it("accepts a valid token and exposes sub, grants and expiry", () => {
    const exp = Math.floor(Date.now() / 1000) + 120;
    const result = hs.verify(jwt.sign({ sub: "alice", channels: ["odds:*", "vip"], exp, iss: "gw-tests", aud: "gateway" }, secret));
    expect(result).toEqual({ ok: true, principal: { sub: "alice", channels: ["odds:*", "vip"], expiresAt: exp * 1000 } });
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

  it("takes the bearer header before the query parameter", () => {
    expect(tokenFrom("Bearer abc.def.ghi", "zzz")).toBe("abc.def.ghi");
    expect(tokenFrom("", "zzz")).toBe("zzz");
    expect(tokenFrom("Basic Zm9vOmJhcg==", "")).toBeUndefined();
  });
});
