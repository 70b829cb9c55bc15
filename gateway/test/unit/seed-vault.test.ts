/**
 * The sealed seed: a takeover opens what the previous authority sealed, and
 * nothing else opens it: not another key, not another round, not a changed
 * seal. The commitment is the SDK's, and the seal shows nothing of the seed.
 */

import { describe, expect, it } from "vitest";
import { commitmentOf as sdkCommitment } from "../../../shared/src/client/verify-round.js";
import { oddsFor } from "../../src/clock/round-schedule.js";
import { commitmentOf, SeedVault } from "../../src/clock/seed-vault.js";

const KEY = "unit-test-round-seed-key-0123456789abcdef";

describe("SeedVault", () => {
  it("draws fresh 32-byte seeds whose commitment is the SDK's", async () => {
    const vault = new SeedVault(KEY);
    const seeds = Array.from({ length: 20 }, () => vault.draw());
    expect(new Set(seeds.map((s) => s.seed)).size).toBe(20);
    for (const drawn of seeds) {
      expect(drawn.seed).toMatch(/^[0-9a-f]{64}$/);
      expect(drawn.commitment).toBe(commitmentOf(drawn.seed));
      expect(drawn.commitment).toBe(await sdkCommitment(drawn.seed));
    }
  });

  it("opens a seal on any node with the same key, for the same round and commitment only", () => {
    const sealer = new SeedVault(KEY);
    const drawn = sealer.draw();
    const sealed = sealer.seal(41, drawn);
    expect(sealed).not.toContain(drawn.seed);
    expect(Buffer.from(sealed.split(".")[2] ?? "", "base64url").toString("hex")).not.toContain(drawn.seed);

    const otherNode = new SeedVault(KEY);
    expect(otherNode.open(41, drawn.commitment, sealed)).toBe(drawn.seed);
    expect(otherNode.open(42, drawn.commitment, sealed)).toBeNull();
    expect(otherNode.open(41, sealer.draw().commitment, sealed)).toBeNull();
    expect(new SeedVault(`${KEY}-rotated`).open(41, drawn.commitment, sealed)).toBeNull();
  });

  it("refuses a changed or malformed seal instead of revealing another seed", () => {
    const vault = new SeedVault(KEY);
    const drawn = vault.draw();
    const sealed = vault.seal(7, drawn);
    const [version, iv, body] = sealed.split(".") as [string, string, string];
    const flipped = Buffer.from(body, "base64url");
    flipped[0] = (flipped[0] as number) ^ 1;
    expect(vault.open(7, drawn.commitment, `${version}.${iv}.${flipped.toString("base64url")}`)).toBeNull();
    for (const bad of ["", "v1", "v2." + iv + "." + body, `v1.${iv}`, `v1.${iv}.${body.slice(4)}`, `v1.AAAA.${body}`]) {
      expect(vault.open(7, drawn.commitment, bad), bad).toBeNull();
    }
  });
});

describe("oddsFor", () => {
  it("prices every runner at runners × (1 − margin), rounded down to 0.01", () => {
    expect(oddsFor(8, 500)).toEqual(Array.from({ length: 8 }, () => 7.6));
    expect(oddsFor(6, 0)).toEqual(Array.from({ length: 6 }, () => 6));
    expect(oddsFor(7, 333)).toEqual(Array.from({ length: 7 }, () => 6.76));
    expect(oddsFor(2, 5000)).toEqual([1, 1]);
  });
});
