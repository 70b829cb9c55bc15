/**
 * README's layout table against the tree: every path it names exists, and
 * every folder and file of gateway/src/ has a row.
 */

import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../../scripts/lib/paths.js";

function layoutPaths(): string[] {
  const readme = readFileSync(path.join(repoRoot(), "README.md"), "utf8").split("\n");
  const header = readme.indexOf("| path | what lives there |");
  expect(header).toBeGreaterThan(-1);
  const end = readme.findIndex((line, i) => i > header && !line.startsWith("|"));
  return readme
    .slice(header + 2, end)
    .flatMap((row) => [...(row.split("|")[1] ?? "").matchAll(/`([^`]+)`/g)].map((match) => match[1] ?? ""));
}

describe("README layout table", () => {
  it("names only paths that exist", () => {
    const missing = layoutPaths().filter((entry) => !existsSync(path.join(repoRoot(), entry)));
    expect(missing).toEqual([]);
  });

  it("has a row for every folder and file of gateway/src", () => {
    const listed = new Set(layoutPaths().map((entry) => entry.replace(/\/$/, "")));
    const entries = readdirSync(path.join(repoRoot(), "gateway/src")).map((name) => `gateway/src/${name}`);
    expect(entries.filter((entry) => !listed.has(entry))).toEqual([]);
  });
});
