/**
 * The Redis Cluster hash slot of a key or shard channel: CRC16 (XMODEM) of
 * its hash tag — the text between the first `{` and the next `}`, when that
 * is not empty — or of the whole name, modulo 16384. The broker groups a
 * batch by it, and the sharded subscriber routes SSUBSCRIBE by it.
 */

export const CLUSTER_SLOTS = 16_384;

const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[byte] = crc;
  }
  return table;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ byte) & 0xff] as number);
  return crc;
}

/** The part of `name` Redis hashes: its hash tag, or all of it. */
export function hashedPart(name: string): string {
  const open = name.indexOf("{");
  if (open === -1) return name;
  const close = name.indexOf("}", open + 1);
  return close === -1 || close === open + 1 ? name : name.slice(open + 1, close);
}

export function keySlot(name: string): number {
  return crc16(Buffer.from(hashedPart(name), "utf8")) % CLUSTER_SLOTS;
}
