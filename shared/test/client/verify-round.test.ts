/**
 * verifyRound() and the functions behind it, against an independent
 * implementation of the procedure docs/game-screens.md publishes (Node's
 * synchronous crypto instead of Web Crypto), so the SDK, the gateway and any
 * third party that follows the prose compute the same rankings.
 */

import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { commitmentOf, rankingFromSeed, verifyRound } from "../../src/client/verify-round.js";
import { repoRoot } from "../../../scripts/lib/paths.js";

/** The documented procedure, written out again from the prose. */
function referenceRanking(seedHex: string, runners: number): number[] {
  const key = Buffer.from(seedHex, "hex");
  const words: number[] = [];
  let block = 0;
  const next = (): number => {
    if (words.length === 0) {
      const counter = Buffer.alloc(4);
      counter.writeUInt32BE(block++);
      const mac = createHmac("sha256", key).update(counter).digest();
      for (let i = 0; i < 32; i += 4) words.push(mac.readUInt32BE(i));
    }
    return words.shift() as number;
  };
  const ranking = Array.from({ length: runners }, (_, i) => i + 1);
  for (let i = runners - 1; i > 0; i--) {
    const m = i + 1;
    const limit = 2 ** 32 - (2 ** 32 % m);
    let w = next();
    while (w >= limit) w = next();
    const j = w % m;
    [ranking[i], ranking[j]] = [ranking[j] as number, ranking[i] as number];
  }
  return ranking;
}

/** Deterministic seeds: SHA-256 of a counter. */
function seedNumber(n: number): string {
  return createHash("sha256").update(`seed-${n}`).digest("hex");
}

describe("round verification", () => {
  it("commits to a seed with SHA-256 of its bytes", async () => {
    for (let n = 0; n < 5; n++) {
      const seed = seedNumber(n);
      expect(await commitmentOf(seed)).toBe(createHash("sha256").update(Buffer.from(seed, "hex")).digest("hex"));
    }
  });

  it("ranks as the documented procedure does, for every field size", async () => {
    for (let n = 0; n < 40; n++) {
      const runners = 2 + (n % 63);
      const seed = seedNumber(n);
      const ranking = await rankingFromSeed(seed, runners);
      expect(ranking).toEqual(referenceRanking(seed, runners));
      expect([...ranking].sort((a, b) => a - b)).toEqual(Array.from({ length: runners }, (_, i) => i + 1));
    }
  });

  it("matches the test vector printed in docs/game-screens.md", async () => {
    const doc = readFileSync(path.join(repoRoot(), "docs", "game-screens.md"), "utf8");
    const vector = /seed `([0-9a-f]{64})`, commitment `([0-9a-f]{64})`, 8 runners: ranking `\[([\d,]+)\]`/.exec(doc);
    expect(vector, "docs/game-screens.md has a test vector").not.toBeNull();
    const [, seed, commitment, ranking] = vector as unknown as [string, string, string, string];
    expect(await commitmentOf(seed)).toBe(commitment);
    expect(await rankingFromSeed(seed, 8)).toEqual(ranking.split(",").map(Number));
    expect(await verifyRound({ commitment, seed, ranking: ranking.split(",").map(Number) })).toEqual({ verified: true });
  });

  it("draws every finishing order about equally often", async () => {
    const counts = new Map<string, number>();
    const draws = 3000;
    for (let n = 0; n < draws; n++) {
      const key = (await rankingFromSeed(seedNumber(1000 + n), 3)).join("");
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    expect(counts.size).toBe(6);
    // 500 expected each; 6 standard deviations (~±124) of slack keeps this from ever flaking.
    for (const count of counts.values()) expect(Math.abs(count - draws / 6)).toBeLessThan(125);
  });

  it("verifies an honest round and names what is wrong with a dishonest one", async () => {
    const seed = seedNumber(7);
    const commitment = await commitmentOf(seed);
    const ranking = await rankingFromSeed(seed, 8);
    expect(await verifyRound({ commitment, seed, ranking })).toEqual({ verified: true });

    // The seed does not hash to what was committed before the bets closed.
    expect(await verifyRound({ commitment, seed: seedNumber(8), ranking: await rankingFromSeed(seedNumber(8), 8) })).toEqual({ verified: false, reason: "commitment_mismatch" });
    // The announced order is not the one the seed gives.
    const swapped = [ranking[1], ranking[0], ...ranking.slice(2)] as number[];
    expect(await verifyRound({ commitment, seed, ranking: swapped })).toEqual({ verified: false, reason: "ranking_mismatch" });
    expect(await verifyRound({ commitment, seed, ranking: ranking.slice(0, 7) })).toEqual({ verified: false, reason: "ranking_mismatch" });
    expect(await verifyRound({ commitment, seed, ranking: [] })).toEqual({ verified: false, reason: "ranking_mismatch" });
    expect(await verifyRound({ commitment, seed: seed.toUpperCase(), ranking })).toEqual({ verified: false, reason: "malformed_seed" });
    expect(await verifyRound({ commitment, seed: seed.slice(2), ranking })).toEqual({ verified: false, reason: "malformed_seed" });
  });
});
