/**
 * GET /v1/openapi.yaml: the HTTP contract of the node (docs/openapi.yaml),
 * read once when the route is attached. Public: it describes the routes, not
 * any credential. Without the file (an image built without docs/), the route
 * says so with 503 instead of failing silently.
 */

import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { TemplatedApp } from "uWebSockets.js";
import type { Logger } from "pino";
import { ErrorCodes } from "../../../shared/src/codes.js";
import { guard, sendError } from "./responses.js";

export const OPENAPI_PATH = "/v1/openapi.yaml";

/** docs/openapi.yaml, from dist/gateway/src/http/openapi-document.js (or the source tree). */
export function defaultOpenApiFile(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../docs/openapi.yaml");
}

export function attachOpenApiDocument(app: TemplatedApp, options: { readonly file?: string; readonly log: Logger }): void {
  const file = options.file ?? defaultOpenApiFile();
  if (!existsSync(file)) {
    options.log.warn({ file }, "docs/openapi.yaml not found; GET /v1/openapi.yaml answers 503");
    app.get(OPENAPI_PATH, (res) => sendError(res, guard(res), "503 Service Unavailable", { code: ErrorCodes.unavailable.code, message: "this node was deployed without docs/openapi.yaml" }));
    return;
  }
  const body = readFileSync(file);
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
  app.get(OPENAPI_PATH, (res, req) => {
    const notModified = req.getHeader("if-none-match") === etag;
    res.cork(() => {
      res.writeStatus(notModified ? "304 Not Modified" : "200 OK").writeHeader("etag", etag).writeHeader("cache-control", "no-cache");
      if (notModified) res.end();
      else res.writeHeader("content-type", "application/yaml; charset=utf-8").end(body);
    });
  });
}
