import { describe, expect, it } from "vitest";
import { AddressRates } from "../../src/limits/address-rates.js";
import { RateGate } from "../../src/limits/rate-gate.js";

/** Arrivals at `at` ms through `gate`, with refused ones counted as debt (the frame gate's way). */
function withDebt(gate: RateGate, arrivals: readonly number[]): string[] {
  let tat = 0;
  return arrivals.map((at) => {
    tat = gate.advance(tat, at);
    return gate.admits(tat, at) ? "pass" : gate.overwhelmed(tat, at) ? "close" : "refuse";
  });
}

describe("RateGate", () => {
  it("admits a burst at once, then one per interval", () => {
    const gate = new RateGate(10, 3);
    let tat = 0;
    const admitted = [1000, 1000, 1000, 1000, 1100, 1150, 1200].map((at) => {
      const next = gate.advance(tat, at);
      if (!gate.admits(next, at)) return false;
      tat = next;
      return true;
    });
    expect(admitted).toEqual([true, true, true, false, true, false, true]);
  });

  it("with debt, refuses a client that keeps sending and is overwhelmed after another burst", () => {
    const gate = new RateGate(10, 3);
    expect(withDebt(gate, Array.from({ length: 8 }, () => 5000))).toEqual(["pass", "pass", "pass", "refuse", "refuse", "refuse", "close", "close"]);
  });

  it("with debt, lets a client that paused long enough in again", () => {
    const gate = new RateGate(10, 3);
    // 5 at once: 3 pass, 2 refused (tat 500 ms ahead); after 300 ms the next is within the burst again.
    expect(withDebt(gate, [0, 0, 0, 0, 0, 300])).toEqual(["pass", "pass", "pass", "refuse", "refuse", "pass"]);
  });

  it("is idle again once its state is in the past", () => {
    const gate = new RateGate(1, 1);
    const tat = gate.advance(0, 10_000);
    expect(gate.idle(tat, 10_500)).toBe(false);
    expect(gate.idle(tat, 11_000)).toBe(true);
  });

  it("refuses nonsense rates", () => {
    expect(() => new RateGate(0, 1)).toThrow(RangeError);
    expect(() => new RateGate(1, 0)).toThrow(RangeError);
  });
});

describe("AddressRates", () => {
  it("limits each address on its own", () => {
    const rates = new AddressRates(new RateGate(1, 2));
    expect([rates.admit("a", 0), rates.admit("a", 0), rates.admit("a", 0), rates.admit("b", 0)]).toEqual([true, true, false, true]);
    expect(rates.admit("a", 1000)).toBe(true);
  });

  it("stays within its bound whatever the number of addresses, forgetting idle and then the oldest ones", () => {
    const rates = new AddressRates(new RateGate(1, 1), 100);
    for (let i = 0; i < 1000; i++) expect(rates.admit(`10.0.${i >> 8}.${i & 0xff}`, 0)).toBe(true);
    expect(rates.size).toBe(100);
    // 20 s later every bucket is full again: the next arrival prunes them all.
    rates.admit("192.0.2.1", 20_000);
    expect(rates.size).toBe(1);
  });
});
