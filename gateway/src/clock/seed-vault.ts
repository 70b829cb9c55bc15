/**
 * The race seed between betting closing and the reveal. The authority draws
 * a fresh seed when the race starts, announces only its commitment, and keeps
 * the seed in the round's Redis hash sealed with AES-256-GCM under a key every
 * gateway node derives from ROUND_SEED_KEY. Whoever can read Redis (every
 * ingest producer can) sees ciphertext and the commitment, never the seed; a
 * node that takes the round over mid-race opens it and finishes with the seed
 * that was committed to.
 *
 * The sealed text is bound to its round id and commitment (GCM's associated
 * data), so a seal moved to another round does not open. A seal that does not
 * open (another key, tampering) leaves the round unfinishable: it is voided.
 */

import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";

export interface DrawnSeed {
  /** 32 random bytes as 64 lower-case hex digits. */
  readonly seed: string;
  /** hex(SHA-256(seed bytes)): what race_started announces. */
  readonly commitment: string;
}

const VERSION = "v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;
const SEED_BYTES = 32;

/** hex(SHA-256(seed)), the same function as the SDK's commitmentOf(). */
export function commitmentOf(seedHex: string): string {
  return createHash("sha256").update(Buffer.from(seedHex, "hex")).digest("hex");
}

export class SeedVault {
  private readonly key: Buffer;

  constructor(secret: string) {
    // HKDF: the configured secret may be any text; the cipher needs 32 uniform bytes.
    this.key = Buffer.from(hkdfSync("sha256", secret, "", "gateway round seed seal v1", 32));
  }

  draw(): DrawnSeed {
    const seed = randomBytes(SEED_BYTES).toString("hex");
    return { seed, commitment: commitmentOf(seed) };
  }

  /** `v1.<iv>.<ciphertext><tag>`, base64url: safe in a Redis hash and in JSON. */
  seal(roundId: number, drawn: DrawnSeed): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    cipher.setAAD(associatedData(roundId, drawn.commitment));
    const body = Buffer.concat([cipher.update(Buffer.from(drawn.seed, "hex")), cipher.final(), cipher.getAuthTag()]);
    return `${VERSION}.${iv.toString("base64url")}.${body.toString("base64url")}`;
  }

  /** The seed, or null when the seal does not open for this round and commitment. */
  open(roundId: number, commitment: string, sealed: string): string | null {
    const [version, ivText, bodyText] = sealed.split(".");
    if (version !== VERSION || ivText === undefined || bodyText === undefined) return null;
    const iv = Buffer.from(ivText, "base64url");
    const body = Buffer.from(bodyText, "base64url");
    if (iv.length !== IV_BYTES || body.length !== SEED_BYTES + TAG_BYTES) return null;
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.key, iv);
      decipher.setAAD(associatedData(roundId, commitment));
      decipher.setAuthTag(body.subarray(SEED_BYTES));
      const seed = Buffer.concat([decipher.update(body.subarray(0, SEED_BYTES)), decipher.final()]).toString("hex");
      return commitmentOf(seed) === commitment ? seed : null;
    } catch {
      // GCM's authentication failed: another key, or a changed seal. The caller voids the round.
      return null;
    }
  }
}

function associatedData(roundId: number, commitment: string): Buffer {
  return Buffer.from(`round:${roundId}:${commitment}`, "utf8");
}
