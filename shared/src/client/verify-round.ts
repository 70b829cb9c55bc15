/**
 * Provably fair rounds: the result of a race is a deterministic function of
 * a seed the gateway draws when betting closes. `race_started` carries the
 * seed's commitment (SHA-256), `round_finished` reveals the seed, and anyone
 * can recompute both. docs/game-screens.md states the procedure in prose, for
 * reimplementations in other languages; this module is the reference, and
 * the gateway computes every ranking with it.
 *
 *   seed        32 random bytes, sent as 64 lower-case hex digits
 *   commitment  hex(SHA-256(seed bytes))
 *   words       block k = HMAC-SHA256(key = seed bytes, message = k as 4 bytes
 *               big-endian), k = 0, 1, 2, …; each block gives eight 32-bit
 *               big-endian unsigned words, consumed in order
 *   ranking     a = [1, 2, …, n]; for i = n-1 down to 1: m = i + 1, take
 *               the next word w until w < 2^32 - (2^32 mod m) (rejection
 *               sampling, so every j is equally likely), j = w mod m, swap
 *               a[i] and a[j]. a[0] is the winner.
 *
 * Web Crypto only (browsers, Electron, Node ≥ 20's global `crypto`), so the
 * functions are async. Its own module and bundle (`/verify-round.js`): the
 * main SDK bundle stays within its size budget for screens that never verify.
 */

const SEED_HEX = /^[0-9a-f]{64}$/;
const WORDS_PER_BLOCK = 8;
const TWO_POW_32 = 2 ** 32;

export interface RoundProof {
  /** The commitment as `race_started` announced it, before the result was known. */
  readonly commitment: string;
  /** The seed `round_finished` revealed. */
  readonly seed: string;
  /** The ranking `round_finished` announced, first place first. */
  readonly ranking: readonly number[];
}

export type RoundVerification =
  | { readonly verified: true }
  | { readonly verified: false; readonly reason: "malformed_seed" | "commitment_mismatch" | "ranking_mismatch" };

function seedBytes(seedHex: string): Uint8Array<ArrayBuffer> | null {
  if (!SEED_HEX.test(seedHex)) return null;
  const bytes = new Uint8Array(new ArrayBuffer(seedHex.length / 2));
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(seedHex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

function toHex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** hex(SHA-256(seed)). Rejects a seed that is not 64 lower-case hex digits. */
export async function commitmentOf(seedHex: string): Promise<string> {
  const bytes = seedBytes(seedHex);
  if (bytes === null) throw new TypeError("seed must be 64 lower-case hex digits");
  return toHex(await crypto.subtle.digest("SHA-256", bytes));
}

/** The finishing order of runners 1..n that `seedHex` determines. */
export async function rankingFromSeed(seedHex: string, runners: number): Promise<number[]> {
  const bytes = seedBytes(seedHex);
  if (bytes === null) throw new TypeError("seed must be 64 lower-case hex digits");
  if (!Number.isSafeInteger(runners) || runners < 1) throw new RangeError("runners must be a positive integer");
  const key = await crypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  let block = -1;
  let words = new DataView(new ArrayBuffer(0));
  let used = WORDS_PER_BLOCK;
  const nextWord = async (): Promise<number> => {
    if (used === WORDS_PER_BLOCK) {
      block++;
      const message = new DataView(new ArrayBuffer(4));
      message.setUint32(0, block);
      words = new DataView(await crypto.subtle.sign("HMAC", key, message.buffer));
      used = 0;
    }
    return words.getUint32(4 * used++);
  };
  const ranking = Array.from({ length: runners }, (_, i) => i + 1);
  for (let i = runners - 1; i > 0; i--) {
    const m = i + 1;
    const limit = TWO_POW_32 - (TWO_POW_32 % m);
    let word = await nextWord();
    while (word >= limit) word = await nextWord();
    const j = word % m;
    [ranking[i], ranking[j]] = [ranking[j] as number, ranking[i] as number];
  }
  return ranking;
}

/**
 * Checks a finished round: the revealed seed hashes to the commitment made
 * when betting closed, and it reproduces the announced ranking exactly.
 */
export async function verifyRound(proof: RoundProof): Promise<RoundVerification> {
  if (seedBytes(proof.seed) === null) return { verified: false, reason: "malformed_seed" };
  if ((await commitmentOf(proof.seed)) !== proof.commitment) return { verified: false, reason: "commitment_mismatch" };
  if (proof.ranking.length === 0) return { verified: false, reason: "ranking_mismatch" };
  const expected = await rankingFromSeed(proof.seed, proof.ranking.length);
  const same = expected.every((runner, i) => runner === proof.ranking[i]);
  return same ? { verified: true } : { verified: false, reason: "ranking_mismatch" };
}
