/**
 * The verifier checks signatures itself (auth/jws.ts) instead of through
 * jsonwebtoken. This runs both over the same tokens, at the same instant,
 * and requires the same verdict (accepted or refused, and why) and the same
 * principal: the reference is the verifier as it was on jsonwebtoken 9. A
 * token of a broken shape (a payload or header that is not a JSON object, a
 * signature of the wrong length) must be refused by both, for whichever
 * reason each finds first: jsonwebtoken parses the payload before it looks
 * at the algorithm, the verifier checks the signature first. The one
 * deliberate difference, a `crit` header, is checked on its own.
 */

import { createHmac, createPublicKey, generateKeyPairSync, sign as cryptoSign, type KeyObject } from "node:crypto";
import jwt from "jsonwebtoken";
import { describe, expect, it } from "vitest";
import type { JwsAlgorithm } from "../../src/auth/jws.js";
import { JwtVerifier, type VerifyResult } from "../../src/auth/verifier.js";
import type { JwtConfig } from "../../src/config.js";
import { grantProblem, isValidSub } from "../../../shared/src/channels.js";

const NOW_MS = 1_800_000_000_500;
const NOW = Math.floor(NOW_MS / 1000);
const clock = { now: (): number => NOW_MS };
const DAY = 86_400;

/** The verifier before auth/jws.ts, on jsonwebtoken, with jsonwebtoken's clock pinned to ours. */
function referenceVerify(config: JwtConfig, token: string): VerifyResult {
  const fail = (reason: Extract<VerifyResult, { ok: false }>["reason"]): VerifyResult => ({ ok: false, reason, message: "" });
  let payload: string | jwt.JwtPayload;
  try {
    payload = jwt.verify(token, config.key, {
      algorithms: [...config.algorithms],
      clockTolerance: config.clockToleranceSeconds,
      clockTimestamp: NOW,
      ...(config.issuer !== undefined ? { issuer: config.issuer } : {}),
      ...(config.audience !== undefined ? { audience: [...config.audience] as [string, ...string[]] } : {}),
    });
  } catch (err) {
    if (err instanceof jwt.TokenExpiredError) return fail("expired");
    if (err instanceof jwt.NotBeforeError) return fail("not_yet_valid");
    const message = err instanceof Error ? err.message : String(err);
    if (message.startsWith("jwt audience invalid")) return fail("audience");
    if (message.startsWith("jwt issuer invalid")) return fail("issuer");
    if (message === "invalid algorithm" || message === "jwt signature is required" || message.includes("must be a")) return fail("algorithm");
    if (message === "invalid signature") return fail("bad_signature");
    return fail("malformed");
  }
  if (typeof payload === "string") return fail("invalid_claims");
  const sub = payload.sub;
  if (typeof sub !== "string" || sub.length === 0 || !isValidSub(sub)) return fail("invalid_claims");
  if (payload.iat !== undefined && (typeof payload.iat !== "number" || !Number.isFinite(payload.iat))) return fail("invalid_claims");
  const max = config.maxLifetimeSeconds;
  if (max !== null) {
    if (payload.exp === undefined) return fail("lifetime");
    const from = payload.iat === undefined ? NOW_MS / 1000 : Math.min(payload.iat, NOW_MS / 1000);
    if (payload.exp - from > max + config.clockToleranceSeconds) return fail("lifetime");
  }
  const claim: unknown = payload["channels"];
  if (claim !== undefined && (!Array.isArray(claim) || claim.length > 256 || claim.some((c) => typeof c !== "string" || grantProblem(c) !== null))) return fail("invalid_claims");
  const channels = (claim ?? []) as string[];
  return { ok: true, principal: { sub, channels, expiresAt: typeof payload.exp === "number" ? payload.exp * 1000 : null, issuedAt: typeof payload.iat === "number" ? payload.iat * 1000 : null } };
}

const secret = "differential-secret-0123456789";
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec256 = generateKeyPairSync("ec", { namedCurve: "P-256" });
const ec384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
const pem = (key: KeyObject): string => key.export({ type: "spki", format: "pem" }).toString();
const rsaPublic = createPublicKey(pem(rsa.publicKey));

function b64(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

/** Signs any header and payload text, including shapes jsonwebtoken will not produce. */
function forge(alg: JwsAlgorithm, header: unknown, payload: unknown): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const hash = `sha${alg.slice(2)}`;
  let signature: Buffer;
  if (alg.startsWith("HS")) signature = createHmac(hash, secret).update(input).digest();
  else if (alg.startsWith("ES")) signature = cryptoSign(hash, Buffer.from(input), { key: alg === "ES384" ? ec384.privateKey : ec256.privateKey, dsaEncoding: "ieee-p1363" });
  else if (alg.startsWith("PS")) signature = cryptoSign(hash, Buffer.from(input), { key: rsa.privateKey, padding: 6, saltLength: -1 });
  else signature = cryptoSign(hash, Buffer.from(input), rsa.privateKey);
  return `${input}.${signature.toString("base64url")}`;
}

/** Claim sets around every boundary the registered claims have. */
function claimVariants(): Array<Record<string, unknown> | string | unknown[]> {
  return [
    { sub: "alice", iat: NOW, exp: NOW + 60 },
    { sub: "alice", iat: NOW, exp: NOW + 60, iss: "issuer-a", aud: "gateway" },
    { sub: "alice", iat: NOW, exp: NOW + 60, iss: "issuer-a", aud: ["other", "gateway"] },
    { sub: "alice", iat: NOW, exp: NOW + 60, iss: "issuer-a", aud: ["other", 7] },
    { sub: "alice", iat: NOW, exp: NOW + 60, iss: "issuer-b", aud: "gateway" },
    { sub: "alice", iat: NOW, exp: NOW + 60, iss: ["issuer-a"], aud: "gateway" },
    { sub: "alice", exp: NOW },
    { sub: "alice", exp: NOW - 5 },
    { sub: "alice", exp: NOW - 4 },
    { sub: "alice", exp: NOW + 1 },
    { sub: "alice", exp: "tomorrow" },
    { sub: "alice", exp: NOW + 60, nbf: NOW + 5 },
    { sub: "alice", exp: NOW + 60, nbf: NOW + 6 },
    { sub: "alice", exp: NOW + 60, nbf: NOW + 1 },
    { sub: "alice", exp: NOW + 60, nbf: "now" },
    { sub: "alice", exp: NOW + 60, iat: "yesterday" },
    { sub: "alice", exp: NOW + DAY, iat: NOW },
    { sub: "alice", exp: NOW + DAY + 6, iat: NOW },
    { sub: "alice", exp: NOW + 2 * DAY, iat: NOW + DAY },
    { sub: "alice", exp: NOW + 2 * DAY },
    { sub: "alice" },
    { sub: "", exp: NOW + 60 },
    { sub: "a b", exp: NOW + 60 },
    { sub: "alice:orders", exp: NOW + 60 },
    { sub: 42, exp: NOW + 60 },
    { exp: NOW + 60 },
    { sub: "alice", exp: NOW + 60, channels: ["odds:*", "vip"] },
    { sub: "alice", exp: NOW + 60, channels: ["user:*"] },
    { sub: "alice", exp: NOW + 60, channels: "race" },
    { sub: "alice", exp: NOW + 60, channels: [1] },
    ["sub", "alice"],
    "a string payload",
  ];
}

interface Case {
  readonly name: string;
  readonly config: JwtConfig;
  readonly token: string;
  /** Both must refuse it; the reasons may differ. */
  readonly brokenShape: boolean;
}

/** The last two claim variants are not JSON objects. */
const BROKEN_PAYLOADS = 2;

function config(key: string | KeyObject, algorithms: JwsAlgorithm[], extra: Partial<JwtConfig> = {}): JwtConfig {
  return { key, algorithms, issuer: undefined, audience: undefined, clockToleranceSeconds: 5, maxLifetimeSeconds: DAY, ...extra };
}

function cases(): Case[] {
  const configs: Array<[string, JwtConfig]> = [
    ["HS256", config(secret, ["HS256"])],
    ["HS256+HS512, development", config(secret, ["HS256", "HS512"], { maxLifetimeSeconds: null, clockToleranceSeconds: 0 })],
    ["HS256 with issuer and audience", config(secret, ["HS256"], { issuer: "issuer-a", audience: ["gateway", "admin"] })],
    ["RS256", config(rsaPublic, ["RS256"])],
    ["RS256+PS256", config(rsaPublic, ["RS256", "PS256"])],
    ["ES256", config(createPublicKey(pem(ec256.publicKey)), ["ES256"])],
  ];
  const algorithms: JwsAlgorithm[] = ["HS256", "HS512", "RS256", "PS256", "ES256", "ES384"];
  const list: Case[] = [];
  for (const [configName, cfg] of configs) {
    const add = (name: string, token: string, brokenShape = false): void => void list.push({ name: `${configName}: ${name}`, config: cfg, token, brokenShape });
    for (const alg of algorithms) {
      const variants = claimVariants();
      variants.forEach((claims, i) => {
        const broken = i >= variants.length - BROKEN_PAYLOADS;
        const token = forge(alg, { alg, typ: "JWT" }, claims);
        add(`${alg} claims #${i}`, token, broken);
        const [head, body, signature = ""] = token.split(".");
        // The last character's spare bits (HS) or a flipped one (others): the signature no longer matches.
        const last = signature.at(-1) === "A" ? "B" : "A";
        add(`${alg} claims #${i}, signature altered`, `${head}.${body}.${signature.slice(0, -1)}${last}`, broken);
      });
      const good = forge(alg, { alg, typ: "JWT" }, { sub: "bob", exp: NOW + 60 });
      const [head, body, signature = ""] = good.split(".");
      add(`${alg} empty signature`, `${head}.${body}.`);
      add(`${alg} signature of another payload`, `${head}.${b64({ sub: "mallory", exp: NOW + 60 })}.${signature}`);
      add(`${alg} truncated signature`, `${head}.${body}.${signature.slice(0, -4)}`, true);
      add(`${alg} four segments`, `${good}.x`);
      add(`${alg} padded signature`, `${good}=`);
      add(`${alg} space inside`, `${head}.${body} .${signature}`);
      add(`${alg} header without typ`, forge(alg, { alg }, { sub: "bob", exp: NOW + 60 }));
      add(`${alg} header naming another alg`, `${b64({ alg: alg === "HS256" ? "HS512" : "HS256", typ: "JWT" })}.${body}.${signature}`);
    }
    add("alg none", `${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "bob", exp: NOW + 60 })}.`);
    add("alg none with a signature", `${b64({ alg: "none" })}.${b64({ sub: "bob", exp: NOW + 60 })}.c2ln`);
    add("HS256 signed with the RSA public key", `${b64({ alg: "HS256" })}.${b64({ sub: "bob", exp: NOW + 60 })}.${createHmac("sha256", pem(rsa.publicKey)).update(`${b64({ alg: "HS256" })}.${b64({ sub: "bob", exp: NOW + 60 })}`).digest("base64url")}`);
    add("header not JSON", `${b64("{alg")}.${b64({ sub: "bob" })}.c2ln`);
    add("header an array", `${b64(["HS256"])}.${b64({ sub: "bob" })}.c2ln`, true);
    add("header alg a number", forge("HS256", { alg: 256 }, { sub: "bob", exp: NOW + 60 }), true);
    add("payload not JSON", forge("HS256", { alg: "HS256" }, "{sub"), true);
    add("empty header", `.${b64({ sub: "bob" })}.c2ln`);
    add("empty payload", `${b64({ alg: "HS256" })}..c2ln`);
    add("garbage", "not-a-jwt");
    add("three garbage parts", "a.b.c");
  }
  return list;
}

describe("JwtVerifier against jsonwebtoken 9", () => {
  const all = cases();

  it("covers accepted and refused tokens of every kind", () => {
    const verdicts = new Set(all.map((c) => { const r = referenceVerify(c.config, c.token); return r.ok ? "ok" : r.reason; }));
    expect([...verdicts].sort()).toEqual(["algorithm", "audience", "bad_signature", "expired", "invalid_claims", "issuer", "lifetime", "malformed", "not_yet_valid", "ok"]);
  });

  it("gives the same verdict and principal for every token", () => {
    const differences: string[] = [];
    for (const c of all) {
      const ours = new JwtVerifier(c.config, clock).verify(c.token);
      const reference = referenceVerify(c.config, c.token);
      const refusedAs = (result: VerifyResult): string => (result.ok ? "" : c.brokenShape ? "refused" : result.reason);
      const oursSummary = ours.ok ? JSON.stringify(ours.principal) : refusedAs(ours);
      const referenceSummary = reference.ok ? JSON.stringify(reference.principal) : refusedAs(reference);
      if (oursSummary !== referenceSummary) differences.push(`${c.name}: ours ${oursSummary}, jsonwebtoken ${referenceSummary}`);
    }
    expect(differences).toEqual([]);
  });

  it("refuses a header with crit, which jsonwebtoken ignores (RFC 7515: an extension not understood must fail)", () => {
    const token = forge("HS256", { alg: "HS256", crit: ["exp"] }, { sub: "bob", exp: NOW + 60 });
    const cfg = config(secret, ["HS256"]);
    expect(referenceVerify(cfg, token).ok).toBe(true);
    expect(new JwtVerifier(cfg, clock).verify(token)).toMatchObject({ ok: false, reason: "malformed" });
  });

  it("refuses a key that cannot verify a pinned algorithm at construction", () => {
    expect(() => new JwtVerifier(config(rsaPublic, ["HS256"]), clock)).toThrow(/cannot verify HS256/);
    expect(() => new JwtVerifier(config(secret, ["RS256"]), clock)).toThrow(/cannot verify RS256/);
    expect(() => new JwtVerifier(config(createPublicKey(pem(ec384.publicKey)), ["ES256"]), clock)).toThrow(/cannot verify ES256/);
  });
});
