/**
 * docs/protocol.md lists every close and error code of shared/src/codes.ts,
 * and every rate limit's variable with its default: clients nobody here
 * wrote read that page, not the code.
 */

import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../../scripts/lib/paths.js";
import { CloseCodes, ErrorCodes } from "../../../shared/src/codes.js";
import { CONFIG_VARIABLES } from "../../src/config.js";

const protocol = readFileSync(path.join(repoRoot(), "docs", "protocol.md"), "utf8");
const operations = readFileSync(path.join(repoRoot(), "docs", "operations.md"), "utf8");

/** The lines of `doc` from `heading` up to the next heading of the same level. */
function section(doc: string, heading: string): string {
  const lines = doc.split("\n");
  const start = lines.indexOf(heading);
  if (start === -1) throw new Error(`no "${heading}" in the page`);
  const level = heading.split(" ")[0] as string;
  const end = lines.findIndex((line, i) => i > start && line.startsWith(`${level} `));
  return lines.slice(start, end === -1 ? undefined : end).join("\n");
}

const RATE_LIMIT_VARIABLES = ["CLIENT_FRAMES_PER_S", "CLIENT_FRAME_BURST", "SUBSCRIBES_PER_S", "SUBSCRIBE_BURST", "MAX_CONNECTIONS_PER_USER", "MAX_COMMANDS_IN_FLIGHT_PER_USER", "CONNECTS_PER_ADDRESS_PER_S", "CONNECT_BURST_PER_ADDRESS"];

describe("docs/protocol.md", () => {
  it("has a row for every close code", () => {
    const closeTable = section(protocol, "## Close codes");
    for (const spec of Object.values(CloseCodes)) expect(closeTable, `close code ${spec.code}`).toContain(`| ${spec.code} | \`${spec.reason}\` |`);
  });

  it("names every error code in its error table", () => {
    const errorTable = section(protocol, "## Error codes");
    for (const spec of Object.values(ErrorCodes)) expect(errorTable, spec.code).toContain(`\`${spec.code}\``);
  });

  it("lists every rate limit, with its code, here and in operations.md", () => {
    for (const page of [section(protocol, "## Rate limits"), section(operations, "## Rate limits")]) {
      for (const name of RATE_LIMIT_VARIABLES) expect(page, name).toContain(`\`${name}\``);
      for (const code of ["rate_limited", "subscribe_rate_limited", "too_many_connections", "too_many_commands", "connect_rate_limited", "too_many_address_connections", "4029"]) expect(page, code).toContain(code);
    }
  });
});

describe("docs/operations.md, Rate limits", () => {
  it("gives each limit's variable its default as the gateway has it", () => {
    const page = section(operations, "## Rate limits");
    const defaults = new Map(CONFIG_VARIABLES.map((variable) => [variable.name, variable.documentedDefault]));
    for (const name of RATE_LIMIT_VARIABLES) expect(page, name).toContain(`| \`${name}\` | ${defaults.get(name) ?? "missing"} |`);
  });
});
