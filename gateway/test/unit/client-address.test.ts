import { describe, expect, it } from "vitest";
import { CidrError, DEFAULT_TRUSTED_PROXIES, parseAddress, rateKey, TrustedProxies } from "../../src/limits/client-address.js";

describe("parseAddress", () => {
  it("reads the forms uWebSockets.js and proxies write, in one canonical form", () => {
    expect(parseAddress("127.0.0.1")).toEqual({ family: "ipv4", text: "127.0.0.1" });
    // uWS on a dual-stack listener: IPv4 peers as long-form mapped IPv6.
    expect(parseAddress("0000:0000:0000:0000:0000:ffff:7f00:0001")).toEqual({ family: "ipv4", text: "127.0.0.1" });
    expect(parseAddress("::ffff:203.0.113.7")).toEqual({ family: "ipv4", text: "203.0.113.7" });
    expect(parseAddress("0000:0000:0000:0000:0000:0000:0000:0001")).toEqual({ family: "ipv6", text: "0:0:0:0:0:0:0:1" });
    expect(parseAddress("::1")).toEqual({ family: "ipv6", text: "0:0:0:0:0:0:0:1" });
    expect(parseAddress(" 2001:DB8::42 ")).toEqual({ family: "ipv6", text: "2001:db8:0:0:0:0:0:42" });
    for (const bad of ["", "unknown", "1.2.3", "999.1.1.1", "2001:db8::1::2", "[::1]", "203.0.113.7:443"]) expect(parseAddress(bad)).toBeNull();
  });

  it("keys IPv4 by address and IPv6 by its /64", () => {
    expect(rateKey(parseAddress("203.0.113.7")!)).toBe("203.0.113.7");
    expect(rateKey(parseAddress("2001:db8:1:2:aaaa::1")!)).toBe(rateKey(parseAddress("2001:db8:1:2:bbbb::9")!));
    expect(rateKey(parseAddress("2001:db8:1:2::1")!)).not.toBe(rateKey(parseAddress("2001:db8:1:3::1")!));
  });
});

describe("TrustedProxies", () => {
  const proxies = new TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8"]);

  it("believes X-Forwarded-For only from a trusted peer, up to the first untrusted hop", () => {
    expect(proxies.clientAddress("127.0.0.1", "203.0.113.7")?.text).toBe("203.0.113.7");
    // A client's own made-up entries sit left of what the proxies appended: ignored.
    expect(proxies.clientAddress("127.0.0.1", "198.51.100.1, 203.0.113.7, 10.0.0.5")?.text).toBe("203.0.113.7");
    expect(proxies.clientAddress("0000:0000:0000:0000:0000:ffff:7f00:0001", "203.0.113.7")?.text).toBe("203.0.113.7");
    expect(proxies.clientAddress("fd00::1", "2001:db8::5")?.text).toBe("2001:db8:0:0:0:0:0:5");
    // Not a trusted peer: the header is the client's own word.
    expect(proxies.clientAddress("192.0.2.50", "203.0.113.7")?.text).toBe("192.0.2.50");
    expect(proxies.clientAddress("127.0.0.2", "203.0.113.7")?.text).toBe("127.0.0.2");
    // No header, or garbage in it: the nearest address that is known.
    expect(proxies.clientAddress("127.0.0.1", "")?.text).toBe("127.0.0.1");
    expect(proxies.clientAddress("127.0.0.1", "203.0.113.7, garbage")?.text).toBe("127.0.0.1");
    expect(proxies.clientAddress("127.0.0.1", "garbage, 203.0.113.7")?.text).toBe("203.0.113.7");
    // Every hop trusted: the left-most.
    expect(proxies.clientAddress("127.0.0.1", "10.1.1.1, 10.2.2.2")?.text).toBe("10.1.1.1");
  });

  it("trusts nobody when empty", () => {
    expect(new TrustedProxies([]).clientAddress("127.0.0.1", "203.0.113.7")?.text).toBe("127.0.0.1");
  });

  it("accepts the defaults and refuses what is not a range", () => {
    expect(() => new TrustedProxies(DEFAULT_TRUSTED_PROXIES)).not.toThrow();
    for (const bad of ["10.0.0.0/33", "::/129", "proxy.internal", "10.0.0.0/8/1", "10.0.0.0/x"]) expect(() => new TrustedProxies([bad])).toThrow(CidrError);
  });
});
