/**
 * Health, readiness and metrics endpoints. /healthz answers while the process
 * runs; /readyz only while the node can serve (Redis ready, not draining), so
 * load balancers and orchestrators stop routing to it otherwise.
 */

import type { TemplatedApp } from "uWebSockets.js";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { ErrorCodes } from "../../../shared/src/codes.js";
import { guard, sendJson } from "./responses.js";

export interface ProbeDeps {
  readonly nodeId: string;
  /** Why the node is not ready, or null when it is. */
  readonly notReadyReason: () => string | null;
  readonly registry: Registry;
  readonly log: Logger;
}

export function attachProbes(app: TemplatedApp, deps: ProbeDeps): void {
  app.get("/healthz", (res) => {
    sendJson(res, guard(res), "200 OK", { status: "ok", node: deps.nodeId });
  });

  app.get("/readyz", (res) => {
    const reason = deps.notReadyReason();
    if (reason === null) sendJson(res, guard(res), "200 OK", { status: "ready", node: deps.nodeId });
    else sendJson(res, guard(res), "503 Service Unavailable", { status: "not_ready", node: deps.nodeId, reason });
  });

  app.get("/metrics", (res) => {
    const state = guard(res);
    deps.registry.metrics().then(
      (text) => {
        if (state.aborted) return;
        res.cork(() => {
          res.writeStatus("200 OK").writeHeader("content-type", deps.registry.contentType).end(text);
        });
      },
      (err: unknown) => {
        deps.log.error({ err }, "metrics collection failed");
        sendJson(res, state, "500 Internal Server Error", { error: { code: ErrorCodes.internal.code, message: "metrics collection failed" } });
      },
    );
  });
}
