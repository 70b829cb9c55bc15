/**
 * The node's uWebSockets.js App: every route in one place, and the listen
 * socket's life.
 */

import uWS, { type TemplatedApp } from "uWebSockets.js";
import { ErrorCodes } from "../../shared/src/codes.js";
import type { PublishApiDeps, PublishApiOptions } from "./http/publish-api.js";
import { attachPublishApi } from "./http/publish-api.js";
import { attachDevTokenRoute, type DevTokenOptions } from "./http/dev-token.js";
import { attachHistoryApi, type HistoryApiDeps, type HistoryApiOptions } from "./http/history-api.js";
import { attachOpenApiDocument } from "./http/openapi-document.js";
import { attachServerApi, type ServerApiDeps, type ServerApiOptions } from "./http/server-api.js";
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
  readonly historyOptions: HistoryApiOptions;
  readonly history: HistoryApiDeps;
  /** Disconnect, revoke, presence, channels, info. */
  readonly serverApiOptions: ServerApiOptions;
  readonly serverApi: ServerApiDeps;
}

/** One route as registered on the App: its method (`get`, `post`, `any`, `ws`…) and pattern. */
export interface Route {
  readonly method: string;
  readonly pattern: string;
}

const ROUTE_METHODS: ReadonlySet<string> = new Set(["get", "post", "put", "del", "patch", "options", "head", "connect", "trace", "any", "ws"]);

/**
 * A new App that remembers every route registered on it, by us or by a
 * library (Socket.IO's attachApp): the node logs the table at start-up, and
 * a test holds it against docs/openapi.yaml.
 */
export function createApp(): { readonly app: TemplatedApp; readonly routes: readonly Route[] } {
  const target = uWS.App();
  const routes: Route[] = [];
  // Made once per method: app.publish runs on every delivery.
  const methods = new Map<PropertyKey, unknown>();
  const app: TemplatedApp = new Proxy(target, {
    get(object, property) {
      const value: unknown = Reflect.get(object, property, object);
      if (typeof value !== "function") return value;
      const made = methods.get(property);
      if (made !== undefined) return made;
      const method = value as (...args: unknown[]) => unknown;
      const wrapped =
        typeof property === "string" && ROUTE_METHODS.has(property)
          ? (pattern: string, ...rest: unknown[]): TemplatedApp => {
              routes.push({ method: property, pattern });
              method.call(object, pattern, ...rest);
              return app;
            }
          : method.bind(object);
      methods.set(property, wrapped);
      return wrapped;
    },
  });
  return { app, routes };
}

export function attachRoutes(app: TemplatedApp, parts: ServerParts): void {
  parts.ws.attach(app);
  parts.socketIo.attach(app);
  attachProbes(app, parts.probes);
  attachPublishApi(app, parts.publishOptions, parts.publish);
  attachHistoryApi(app, parts.historyOptions, parts.history);
  attachServerApi(app, parts.serverApiOptions, parts.serverApi);
  attachOpenApiDocument(app, { log: parts.site.log });
  attachStaticSite(app, parts.site);
  attachDevTokenRoute(app, parts.devToken);
  app.any("/*", (res) => {
    sendError(res, guard(res), "404 Not Found", { code: ErrorCodes.notFound.code, message: "no such route" });
  });
}

/** `listen(host, port, options, cb)`: in the native binding, missing from its typings. */
type ListenWithOptions = (host: string, port: number, options: number, cb: (token: uWS.us_listen_socket | false) => void) => TemplatedApp;
/** uSockets' LIBUS_LISTEN_EXCLUSIVE_PORT (the typings' ListenOptions enum has no runtime value). */
const LISTEN_EXCLUSIVE_PORT = 1;

/**
 * Listens with the port to itself. uSockets otherwise sets SO_REUSEPORT, so a
 * second node started on a port already in use (a stale process, a port handed
 * out twice) also "listens", and the kernel silently splits new connections
 * between the two: some clients then reach the wrong node, or one being
 * killed. With the port exclusive, that second start fails instead.
 */
export function listen(app: TemplatedApp, host: string, port: number): Promise<uWS.us_listen_socket> {
  const listenWithOptions = (app.listen as unknown as ListenWithOptions).bind(app);
  return new Promise((resolve, reject) => {
    listenWithOptions(host, port, LISTEN_EXCLUSIVE_PORT, (token) => {
      if (token === false) reject(new Error(`cannot listen on ${host}:${port} (in use, or not an address of this machine)`));
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
