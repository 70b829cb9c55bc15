/**
 * npm run bench:auth [-- --seconds N]
 *
 * Token verifications per second on one core: the gateway's JwtVerifier as a
 * production node configures it (algorithm pinned, issuer and audience
 * required, lifetime bounded to a day, a clock tolerance, a grants claim),
 * over distinct tokens (a distinct `sub` each, as real users), for HS256,
 * RS256 (2048-bit key) and ES256 (P-256). Next to it, jsonwebtoken 9 with the
 * secret as a string (what the node did before) and with a key object.
 *
 * One thread, so one core. Each row runs three trials and reports the median;
 * the rate is counted against this process's CPU time (user + system) as well
 * as wall time, because the machine is shared: CPU time says what one core
 * does, wall time what this run got.
 */

import { createSecretKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import os from "node:os";
import { parseArgs } from "node:util";
import jwt from "jsonwebtoken";
import type { JwsAlgorithm } from "../gateway/src/auth/jws.js";
import { JwtVerifier } from "../gateway/src/auth/verifier.js";
import type { JwtConfig } from "../gateway/src/config.js";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "1" } }, strict: true });
const TRIAL_SECONDS = Number(values.seconds);
if (!(TRIAL_SECONDS > 0)) throw new Error("--seconds must be a positive number");
const TRIALS = 3;
const DAY = 86_400;
const ISSUER = "bench-issuer";
const AUDIENCE = "gateway";
const SECRET = "bench-auth-secret-0123456789abcdef";

/** The targets of issue 16, per core. */
const TARGETS: Readonly<Record<string, number>> = { HS256: 100_000, RS256: 10_000, ES256: 10_000 };

interface Row {
  readonly name: string;
  readonly algorithm: string;
  readonly tokens: number;
  /** Median of the trials, per CPU second and per wall second. */
  readonly perCpuSecond: number;
  readonly perWallSecond: number;
  readonly target: number | null;
}

function tokens(count: number, algorithm: JwsAlgorithm, key: string | KeyObject): string[] {
  const now = Math.floor(Date.now() / 1000);
  return Array.from({ length: count }, (_, i) =>
    jwt.sign({ sub: `user-${i}`, channels: ["odds:*", "vip"], iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 3600 }, key, { algorithm }),
  );
}

/** Runs `verify` over `pool` round robin for TRIAL_SECONDS, TRIALS times; every call must accept. */
function measure(name: string, algorithm: string, pool: readonly string[], verify: (token: string) => boolean): Row {
  const cpuRates: number[] = [];
  const wallRates: number[] = [];
  // Warm-up: let V8 optimise the path before the first trial counts.
  for (let i = 0; i < Math.min(pool.length, 2000); i++) if (!verify(pool[i]!)) throw new Error(`${name}: a valid token was refused`);
  for (let trial = 0; trial < TRIALS; trial++) {
    const cpuStart = process.cpuUsage();
    const wallStart = performance.now();
    const deadline = wallStart + TRIAL_SECONDS * 1000;
    let done = 0;
    // Checks the clock every 256 verifications, so the clock is not what is measured.
    while (performance.now() < deadline) {
      for (let i = 0; i < 256; i++) {
        if (!verify(pool[done % pool.length]!)) throw new Error(`${name}: a valid token was refused`);
        done++;
      }
    }
    const cpu = process.cpuUsage(cpuStart);
    cpuRates.push(done / ((cpu.user + cpu.system) / 1e6));
    wallRates.push(done / ((performance.now() - wallStart) / 1000));
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { name, algorithm, tokens: pool.length, perCpuSecond: median(cpuRates), perWallSecond: median(wallRates), target: TARGETS[algorithm] ?? null };
}

function gatewayVerifier(key: string | KeyObject, algorithm: JwsAlgorithm): JwtVerifier {
  const config: JwtConfig = { key, algorithms: [algorithm], issuer: ISSUER, audience: [AUDIENCE], clockToleranceSeconds: 5, maxLifetimeSeconds: DAY };
  return new JwtVerifier(config);
}

function main(): void {
  const rows: Row[] = [];
  const log = (line: string): void => void process.stderr.write(`[bench:auth] ${line}\n`);

  log("signing HS256 tokens");
  const hsTokens = tokens(20_000, "HS256", SECRET);
  const hs = gatewayVerifier(SECRET, "HS256");
  rows.push(measure("gateway JwtVerifier", "HS256", hsTokens, (t) => hs.verify(t).ok));
  const jwtOptions = { algorithms: ["HS256" as const], issuer: ISSUER, audience: AUDIENCE, clockTolerance: 5 };
  const secretKey = createSecretKey(Buffer.from(SECRET));
  rows.push(measure("jsonwebtoken, key object made once", "HS256", hsTokens, (t) => typeof jwt.verify(t, secretKey, jwtOptions) === "object"));
  // Slow (a key object per call): fewer tokens are enough for its rate.
  rows.push(measure("jsonwebtoken, secret as a string (the node before)", "HS256", hsTokens.slice(0, 5000), (t) => typeof jwt.verify(t, SECRET, jwtOptions) === "object"));

  log("signing RS256 tokens (2048-bit key)");
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const rsTokens = tokens(2000, "RS256", rsa.privateKey);
  const rs = gatewayVerifier(rsa.publicKey, "RS256");
  rows.push(measure("gateway JwtVerifier", "RS256", rsTokens, (t) => rs.verify(t).ok));
  rows.push(measure("jsonwebtoken, key object", "RS256", rsTokens, (t) => typeof jwt.verify(t, rsa.publicKey, { ...jwtOptions, algorithms: ["RS256"] }) === "object"));

  log("signing ES256 tokens (P-256)");
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const esTokens = tokens(2000, "ES256", ec.privateKey);
  const es = gatewayVerifier(ec.publicKey, "ES256");
  rows.push(measure("gateway JwtVerifier", "ES256", esTokens, (t) => es.verify(t).ok));
  rows.push(measure("jsonwebtoken, key object", "ES256", esTokens, (t) => typeof jwt.verify(t, ec.publicKey, { ...jwtOptions, algorithms: ["ES256"] }) === "object"));

  const load = os.loadavg();
  const lines = [
    `# npm run bench:auth`,
    "",
    `${new Date().toISOString()} · ${os.cpus()[0]?.model ?? "cpu"} · Node ${process.version} · one thread · ${TRIALS} trials of ${TRIAL_SECONDS} s, median · load average ${load.map((l) => l.toFixed(2)).join(" ")} (1, 5, 15 min)`,
    "Production settings: algorithm pinned, iss and aud required, exp required and at most a day after iat, 5 s clock tolerance, a grants claim; a distinct sub per token.",
    "",
    "| verifier | alg | distinct tokens | verified/s per CPU second | verified/s wall | target (per core) | verdict |",
    "|---|---|---:|---:|---:|---:|---|",
    ...rows.map((r) => {
      const gateway = r.name.startsWith("gateway");
      const verdict = !gateway || r.target === null ? "" : r.perCpuSecond >= r.target ? "met" : "**missed**";
      return `| ${r.name} | ${r.algorithm} | ${r.tokens} | ${Math.round(r.perCpuSecond).toLocaleString("en-US")} | ${Math.round(r.perWallSecond).toLocaleString("en-US")} | ${gateway && r.target !== null ? r.target.toLocaleString("en-US") : ""} | ${verdict} |`;
    }),
    "",
  ];
  process.stdout.write(lines.join("\n"));
}

main();
