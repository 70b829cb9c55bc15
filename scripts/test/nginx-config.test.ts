import { describe, expect, it } from "vitest";
import { renderOpsNetworksConf } from "../lib/nginx.js";

describe("renderOpsNetworksConf", () => {
  it("lists each operations network as a geo entry", () => {
    expect(renderOpsNetworksConf(["10.20.0.0/16", "192.0.2.7", "fd00::/8"]).split("\n").slice(1)).toEqual(["10.20.0.0/16 1;", "192.0.2.7 1;", "fd00::/8 1;", ""]);
    expect(renderOpsNetworksConf([]).split("\n").slice(1)).toEqual([""]);
  });

  it("refuses anything that is not an address or a CIDR, so nothing else reaches nginx.conf", () => {
    for (const bad of ["10.0.0.0/33", "fd00::/129", "10.0.0.0/8/8", "example.com", "0.0.0.0/0 1; deny", "10.0.0.0/"]) {
      expect(() => renderOpsNetworksConf([bad]), bad).toThrow(/invalid operations network/);
    }
  });
});
