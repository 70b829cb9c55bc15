/**
 * The live page and the browser SDK bundle, served at `/` by every node from
 * the folder `npm run build:web` writes (dist/web). Files are read once when
 * the routes are attached: the set is a handful of small files, and a build
 * produces a new node process anyway (npm start and the image build first).
 * Every file is sent with a strong ETag and `no-cache`, so a browser
 * revalidates (304) and never mixes a new page with an old bundle.
 */

import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { HttpResponse, TemplatedApp } from "uWebSockets.js";
import type { Logger } from "pino";

export interface StaticSiteOptions {
  /** Folder holding index.html, sdk.js, app.js…; default: dist/web beside the compiled gateway. */
  readonly dir?: string;
  readonly log: Logger;
}

interface StaticFile {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

const CONTENT_TYPES: ReadonlyMap<string, string> = new Map([
  [".html", "text/html; charset=utf-8"],
  [".js", "text/javascript; charset=utf-8"],
  [".css", "text/css; charset=utf-8"],
  [".map", "application/json; charset=utf-8"],
  [".json", "application/json; charset=utf-8"],
  [".svg", "image/svg+xml"],
  [".png", "image/png"],
  [".ico", "image/x-icon"],
]);

/**
 * Same-origin only: the page talks to its own node through NGINX. `'self'`
 * covers ws:/wss: to the same host in CSP Level 3 browsers.
 */
const PAGE_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/** dist/web, from dist/gateway/src/http/static-site.js. */
export function defaultSiteDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../web");
}

function loadFiles(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  if (!existsSync(dir)) return files;
  for (const name of readdirSync(dir)) {
    const contentType = CONTENT_TYPES.get(path.extname(name));
    // Only known types, flat: nothing else in the folder is ever exposed.
    if (contentType === undefined || !/^[A-Za-z0-9._-]+$/.test(name)) continue;
    const full = path.join(dir, name);
    if (!statSync(full).isFile()) continue;
    const body = readFileSync(full);
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
    files.set(name, { body, contentType, etag });
  }
  return files;
}

function send(res: HttpResponse, file: StaticFile, ifNoneMatch: string): void {
  res.cork(() => {
    const notModified = ifNoneMatch !== "" && ifNoneMatch.split(/\s*,\s*/).includes(file.etag);
    res.writeStatus(notModified ? "304 Not Modified" : "200 OK");
    res.writeHeader("etag", file.etag);
    res.writeHeader("cache-control", "no-cache");
    res.writeHeader("x-content-type-options", "nosniff");
    if (file.contentType.startsWith("text/html")) {
      res.writeHeader("content-security-policy", PAGE_CSP);
      res.writeHeader("referrer-policy", "no-referrer");
    }
    if (notModified) {
      res.end();
      return;
    }
    res.writeHeader("content-type", file.contentType);
    res.end(file.body);
  });
}

/**
 * GET `/` (index.html) and `/<file>` for each file of the folder. Anything
 * else falls through to the app's catch-all 404. Without a built folder, `/`
 * says how to build it instead of failing silently.
 */
export function attachStaticSite(app: TemplatedApp, options: StaticSiteOptions): { readonly files: readonly string[] } {
  const dir = options.dir ?? defaultSiteDir();
  const files = loadFiles(dir);
  const index = files.get("index.html");
  if (index === undefined) {
    options.log.warn({ dir }, "live page not built (npm run build:web); / answers 503");
    app.get("/", (res) => {
      res.cork(() => {
        res.writeStatus("503 Service Unavailable").writeHeader("content-type", "text/plain; charset=utf-8").writeHeader("cache-control", "no-store");
        res.end("The live page is not built on this node: run `npm run build:web` and restart it.\n");
      });
    });
    return { files: [] };
  }
  // Headers must be read inside the handler: req is invalid once it returns.
  app.get("/", (res, req) => send(res, index, req.getHeader("if-none-match")));
  for (const [name, file] of files) {
    app.get(`/${name}`, (res, req) => send(res, file, req.getHeader("if-none-match")));
  }
  return { files: [...files.keys()] };
}
