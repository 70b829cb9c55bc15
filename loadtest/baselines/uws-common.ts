/**
 * The publish endpoint of the two uWebSockets.js baselines: `POST
 * /v1/publish` with the gateway's body and bearer key, on the uWS App
 * itself, so these baselines hold no Node HTTP server besides.
 */

import type { TemplatedApp } from "uWebSockets.js";
import type { BaselineEnv, PublishBody } from "./common.js";

const MAX_BODY_BYTES = 1024 * 1024;

export function uwsPublishRoute(app: TemplatedApp, env: BaselineEnv, publish: (body: PublishBody) => void): void {
  app.post("/v1/publish", (res, req) => {
    const authorized = req.getHeader("authorization") === `Bearer ${env.publishKey}`;
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((chunk, isLast) => {
      size += chunk.byteLength;
      if (size <= MAX_BODY_BYTES) chunks.push(Buffer.from(chunk.slice(0)));
      if (!isLast || aborted) return;
      res.cork(() => {
        if (!authorized) {
          res.writeStatus("401 Unauthorized").end();
          return;
        }
        let body: PublishBody;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as PublishBody;
        } catch {
          res.writeStatus("400 Bad Request").end();
          return;
        }
        if (size > MAX_BODY_BYTES || typeof body.channel !== "string" || typeof body.event !== "string") {
          res.writeStatus("400 Bad Request").end();
          return;
        }
        publish(body);
        res.writeHeader("content-type", "application/json").end("{}");
      });
    });
  });
}
