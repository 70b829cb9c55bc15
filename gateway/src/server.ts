/**
 * The node's uWebSockets.js App: every route in one place, and the listen
 * socket's life.
 */

import uWS, { type TemplatedApp } from "uWebSockets.js";
import { ErrorCodes } from "../../shared/src/codes.js";
import type { PublishApiDeps, PublishApiOptions } from "./http/publish-api.js";
import { attachPublishApi } from "./http/publish-api.js";
import { attachDevTokenRoute, type DevTokenOptions } from "./http/dev-token.js";
import { attachProbes, type ProbeDeps } from "./http/probes.js";
import { guard, sendError } from "./http/responses.js";
import { attachStaticSite, type StaticSiteOptions } from "./http/static-site.js";
import type { SocketIoTransport } from "./transport/socketio-transport.js";
import type { WsTransport } from "./transport/ws-transport.js";

/**
 * The republished uWS package silently falls back to a slow pure-JS emulation
 * when its native binary does not load; a gateway must refuse to run on that.
 */
export function assertNativeUws(): void {
  if (typeof (uWS as unknown as Record<string, unknown>)["H3App"] !== "function") {
    throw new Error("uWebSockets.js native binary not loaded (fallback implementation active); use Node 20 on linux-x64/arm64");
  }
}

export interface ServerParts {
  readonly ws: WsTransport;
  readonly socketIo: SocketIoTransport;
  readonly probes: ProbeDeps;
  readonly publishOptions: PublishApiOptions;
  readonly publish: PublishApiDeps;
  /** The live page at / and the SDK bundle. */
  readonly site: StaticSiteOptions;
  /** GET /v1/dev/token for the live page; answers only in development. */
  readonly devToken: DevTokenOptions;
}

export function createApp(): TemplatedApp {
  return uWS.App();
}

export function attachRoutes(app: TemplatedApp, parts: ServerParts): void {
  parts.ws.attach(app);
  parts.socketIo.attach(app);
  attachProbes(app, parts.probes);
  attachPublishApi(app, parts.publishOptions, parts.publish);
  attachStaticSite(app, parts.site);
  attachDevTokenRoute(app, parts.devToken);
  app.any("/*", (res) => {
    sendError(res, guard(res), "404 Not Found", { code: ErrorCodes.notFound.code, message: "no such route" });
  });
}

export function listen(app: TemplatedApp, host: string, port: number): Promise<uWS.us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (token) => {
      if (token === false) reject(new Error(`cannot listen on ${host}:${port}`));
      else resolve(token);
    });
  });
}

export function closeListenSocket(token: uWS.us_listen_socket): void {
  uWS.us_listen_socket_close(token);
}

export function listeningPort(token: uWS.us_listen_socket): number {
  return uWS.us_socket_local_port(token);
}
