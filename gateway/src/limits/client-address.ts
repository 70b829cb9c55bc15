/**
 * Which address a connection comes from, for per-address limits. The peer
 * address of the TCP connection, unless that peer is a trusted proxy (NGINX,
 * an ingress): then the right-most address in X-Forwarded-For that is not
 * itself a trusted proxy. A client can write anything into that header, so
 * it is read only behind proxies the operator named (TRUSTED_PROXIES), and
 * only as far left as trusted proxies vouch for it.
 *
 * Addresses are compared in one canonical form: IPv4 dotted, IPv6 as eight
 * hex groups (uWebSockets.js reports IPv6 peers, and IPv4 peers of a
 * dual-stack listener, in the long form `0000:…:ffff:7f00:0001`).
 */

import { BlockList, isIPv4, isIPv6 } from "node:net";

export type AddressFamily = "ipv4" | "ipv6";

export interface Address {
  readonly family: AddressFamily;
  /** Canonical text: dotted IPv4, or eight lower-case hex groups. */
  readonly text: string;
}

/** The eight 16-bit groups of an IPv6 address (a trailing dotted IPv4 included); null when it is not one. */
function ipv6Groups(text: string): number[] | null {
  if (!isIPv6(text)) return null;
  // A trailing dotted IPv4 (`::ffff:1.2.3.4`) is two groups written another way.
  const body = text.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a: string, b: string, c: string, d: string) => `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`);
  const [head = "", rest, extra] = body.split("::");
  if (extra !== undefined) return null;
  const parse = (part: string): number[] => (part === "" ? [] : part.split(":").map((group) => parseInt(group, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const missing = 8 - left.length - right.length;
  if (missing < 0 || (rest === undefined && missing !== 0)) return null;
  return [...left, ...new Array<number>(missing).fill(0), ...right];
}

/** `text` as an address in canonical form (an IPv4-mapped IPv6 address becomes IPv4); null when it is none. */
export function parseAddress(text: string): Address | null {
  const trimmed = text.trim();
  if (isIPv4(trimmed)) return { family: "ipv4", text: trimmed };
  const groups = ipv6Groups(trimmed);
  if (groups === null) return null;
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    const [hi = 0, lo = 0] = groups.slice(6);
    return { family: "ipv4", text: `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}` };
  }
  return { family: "ipv6", text: groups.map((group) => group.toString(16)).join(":") };
}

/**
 * The key per-address limits count under: the IPv4 address, or the IPv6
 * /64 (one subscriber's usual allocation, so rotating through its own
 * addresses does not dodge a limit).
 */
export function rateKey(address: Address): string {
  return address.family === "ipv4" ? address.text : `${address.text.split(":").slice(0, 4).join(":")}::/64`;
}

export class CidrError extends Error {
  override readonly name = "CidrError";
}

/** Proxies whose X-Forwarded-For is believed: a list of CIDR ranges (`10.0.0.0/8`, `::1/128`) or single addresses. */
export class TrustedProxies {
  private readonly ranges = new BlockList();
  readonly empty: boolean;

  /** Throws CidrError naming the first entry that is not an address or a CIDR range. */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [network = "", prefixText, extra] = entry.split("/");
      const address = parseAddress(network);
      if (address === null || extra !== undefined) throw new CidrError(`"${entry}" is not an address or CIDR range`);
      const maxPrefix = address.family === "ipv4" ? 32 : 128;
      const prefix = prefixText === undefined ? maxPrefix : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
      if (!(prefix >= 0 && prefix <= maxPrefix)) throw new CidrError(`"${entry}": the prefix must be 0-${maxPrefix}`);
      this.ranges.addSubnet(address.text, prefix, address.family);
    }
    this.empty = entries.length === 0;
  }

  has(address: Address): boolean {
    return !this.empty && this.ranges.check(address.text, address.family);
  }

  /**
   * The client's address for a connection from `peer` carrying
   * `forwardedFor` (the X-Forwarded-For header, "" when absent). Reads the
   * header right to left while each hop is a trusted proxy; stops at the
   * first entry that is not an address. Null when the peer itself is not an
   * address (never for a TCP peer).
   */
  clientAddress(peer: string, forwardedFor: string): Address | null {
    const direct = parseAddress(peer);
    if (direct === null || forwardedFor === "" || !this.has(direct)) return direct;
    let client = direct;
    const hops = forwardedFor.split(",");
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = parseAddress(hops[i] as string);
      if (hop === null) break;
      client = hop;
      if (!this.has(hop)) break;
    }
    return client;
  }
}

/** Loopback and the private ranges: where NGINX or an ingress controller usually sits next to the nodes. */
export const DEFAULT_TRUSTED_PROXIES: readonly string[] = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];
