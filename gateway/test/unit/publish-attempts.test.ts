import { describe, expect, it } from "vitest";
import { PublishAttempts } from "../../src/ingest/publish-attempts.js";

describe("PublishAttempts", () => {
  it("isolates a batch once one of its entries has failed maxAttempts times", () => {
    const attempts = new PublishAttempts(3);
    const batch = ["1-0", "2-0", "3-0"];
    for (let i = 0; i < 2; i++) attempts.failed(batch);
    expect(attempts.mustIsolate(batch)).toBe(false);
    attempts.failed(batch);
    expect(attempts.mustIsolate(batch)).toBe(true);
    expect(attempts.count("2-0")).toBe(3);
  });

  it("forgets entries that left the batch, so counts never outgrow it", () => {
    const attempts = new PublishAttempts(2);
    attempts.failed(["1-0", "2-0"]);
    attempts.failed(["1-0", "2-0"]);
    attempts.keepOnly(["2-0", "3-0"]);
    expect(attempts.count("1-0")).toBe(0);
    expect(attempts.count("2-0")).toBe(2);
    expect(attempts.mustIsolate(["3-0"])).toBe(false);
    expect(attempts.mustIsolate(["2-0", "3-0"])).toBe(true);
  });
});
