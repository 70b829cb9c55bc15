/**
 * Health, readiness and metrics endpoints. /healthz answers while the process
 * runs; /readyz only while the node can serve (Redis ready, not draining,
 * Postgres usable when configured), so load balancers and orchestrators stop
 * routing to it otherwise. These routes are for the cluster's inside: NGINX
 * answers the public /readyz itself with ready or not, without the reason.
 */

import type { TemplatedApp } from "uWebSockets.js";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { ErrorCodes } from "../../../shared/src/codes.js";
import { guard, sendJson } from "./responses.js";

/** Why a node is not ready; a metric label (spaces as underscores), so a closed set. */
export const NOT_READY_REASONS = ["draining", "redis unavailable", "postgres unavailable", "postgres schema not migrated yet"] as const;
export type NotReadyReason = (typeof NOT_READY_REASONS)[number];

/** What readiness records. */
export interface ReadinessMetrics {
  /** The reason the node is not ready now, or null when it is ready. */
  notReady(reason: NotReadyReason | null): void;
}

export interface ProbeDeps {
  readonly nodeId: string;
  /** Why the node is not ready, or null when it is. */
  readonly notReadyReason: () => NotReadyReason | null;
  readonly registry: Registry;
  readonly metrics: ReadinessMetrics;
  readonly log: Logger;
}

/**
 * Readiness as last seen: every evaluation (each /readyz and each scrape)
 * records the reason, and a change is logged once, so the log and
 * `gateway_not_ready` say why a node is out even where /readyz is not shown.
 */
class ReadinessReport {
  private last: NotReadyReason | null = null;

  constructor(private readonly deps: ProbeDeps) {}

  current(): NotReadyReason | null {
    const reason = this.deps.notReadyReason();
    this.deps.metrics.notReady(reason);
    if (reason !== this.last) {
      if (reason === null) this.deps.log.info({ was: this.last }, "ready");
      else this.deps.log.warn({ reason }, "not ready");
      this.last = reason;
    }
    return reason;
  }
}

export function attachProbes(app: TemplatedApp, deps: ProbeDeps): void {
  const readiness = new ReadinessReport(deps);

  app.get("/healthz", (res) => {
    sendJson(res, guard(res), "200 OK", { status: "ok", node: deps.nodeId });
  });

  app.get("/readyz", (res) => {
    const reason = readiness.current();
    if (reason === null) sendJson(res, guard(res), "200 OK", { status: "ready", node: deps.nodeId });
    else sendJson(res, guard(res), "503 Service Unavailable", { status: "not_ready", node: deps.nodeId, reason });
  });

  app.get("/metrics", (res) => {
    const state = guard(res);
    readiness.current();
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
