/**
 * The two halves of Socket.IO stickiness by session id agree: the ids the
 * gateway issues, and the pattern NGINX reads the node name out of them with.
 * The docker-compose copy of the upstreams is the renderer's output.
 */

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { renderUpstreamsConf, SESSION_ID_PATTERN } from "../../../scripts/lib/nginx.js";
import { repoRoot } from "../../../scripts/lib/paths.js";
import { sessionIdFor } from "../../src/transport/session-id.js";

/** NGINX's map pattern (PCRE, `~` = case-sensitive) as a JavaScript RegExp: same syntax for what it uses. */
const nginxPattern = new RegExp(SESSION_ID_PATTERN.replace(/^~/, ""));

function nodeNginxReads(sid: string): string | null {
  return nginxPattern.exec(sid)?.groups?.["gw_sid_node"] ?? null;
}

/** An id shaped like engine.io's own (15 random bytes, base64url). */
function engineId(): string {
  return randomBytes(15).toString("base64url");
}

describe("session ids and the NGINX map", () => {
  it("lets NGINX read back every node name NODE_ID allows", () => {
    for (const node of ["node-1", "a", "gw_eu.west-1", "web-7f9c4d-xk2lp", "x".repeat(64), "1.2.3"]) {
      for (let i = 0; i < 50; i++) expect(nodeNginxReads(sessionIdFor(node, engineId()))).toBe(node);
    }
  });

  it("reads no node from ids that name none", () => {
    for (const sid of ["", engineId(), "node-1.", ".abc", "node-1.abc/def", "node 1.abc", "node-1.a.b%2E"]) expect(nodeNginxReads(sid), sid).toBeNull();
  });

  it("refuses parts that would make an id ambiguous", () => {
    expect(() => sessionIdFor("bad/name", engineId())).toThrow(/cannot name a session/);
    expect(() => sessionIdFor("", engineId())).toThrow(/cannot name a session/);
    expect(() => sessionIdFor("node-1", "has.dot")).toThrow(/base64url/);
    expect(() => sessionIdFor("node-1", "")).toThrow(/base64url/);
  });

  it("keeps nginx/upstreams.compose.conf equal to what renderUpstreamsConf writes for compose", () => {
    const file = readFileSync(path.join(repoRoot(), "nginx/upstreams.compose.conf"), "utf8");
    const composeNodes = [1, 2, 3].map((i) => ({ name: `node-${i}`, host: `gateway-${i}`, port: 9001 }));
    // Both start with a comment header, then a blank line; what follows must match exactly.
    const body = (text: string): string => text.slice(text.indexOf("\n\n"));
    expect(body(file)).toBe(body(renderUpstreamsConf(composeNodes)));
  });
});
