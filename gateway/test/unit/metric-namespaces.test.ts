import { describe, expect, it } from "vitest";
import { MetricNamespaces, OTHER_NAMESPACE } from "../../src/metrics/metric-namespaces.js";

describe("MetricNamespaces", () => {
  it("keeps the built-in and configured namespaces and labels every other one `other`", () => {
    const namespaces = new MetricNamespaces(["scores"]);
    expect(namespaces.label("race")).toBe("race");
    expect(namespaces.label("forecasts:BTC")).toBe("forecasts");
    expect(namespaces.label("user:alice")).toBe("user");
    expect(namespaces.label("scores:42")).toBe("scores");
    for (const invented of ["x1:a", "x2", "racecar", "user-alice", "users:bob"]) expect(namespaces.label(invented)).toBe(OTHER_NAMESPACE);
  });

  it("can only return the values it lists", () => {
    const namespaces = new MetricNamespaces(["scores"]);
    expect(new Set(namespaces.values())).toEqual(new Set(["race", "forecasts", "user", "scores", "other"]));
  });
});
