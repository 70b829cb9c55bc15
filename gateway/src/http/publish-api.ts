/**
 * POST /v1/publish for backends: `Authorization: Bearer <PUBLISH_KEY>`, body
 * `{channel, event, data}` → `{offset, epoch}`, or `{messages: […]}` →
 * `{results: […]}`. Checks run cheapest first: key, declared length, body.
 */

import { isUtf8 } from "node:buffer";
import type { HttpResponse, TemplatedApp } from "uWebSockets.js";
import type { Logger } from "pino";
import { ErrorCodes } from "../../../shared/src/codes.js";
import type { PublishRequest, PublishResult } from "../../../shared/src/protocol.js";
import { PublishUncertainError } from "../broker/broker.js";
import { PublishEncodeError, validatePublishBody, type PublishLimits } from "../fanout/publisher.js";
import { apiKeyCheck } from "./api-key.js";
import { readBody } from "./body.js";
import { guard, sendError, sendJson, type ResponseGuard } from "./responses.js";

export interface PublishApiOptions {
  readonly publishKey: string;
  readonly maxBodyBytes: number;
  readonly limits: PublishLimits;
}

/** Hands validated messages to the bus. */
export interface BatchPublisher {
  /** All or none; rejects with PublishEncodeError when a message cannot be encoded (the caller's fault), else with the bus's error. */
  publish(requests: readonly PublishRequest[]): Promise<PublishResult[]>;
}

/** What the publish API records. */
export interface PublishApiMetrics {
  /** A publish request refused or failed: unauthorized, too_large, bad_request, forbidden, unavailable, broker. */
  publishFailed(reason: string): void;
  httpRequest(route: string, status: number): void;
}

export interface PublishApiDeps {
  readonly publisher: BatchPublisher;
  readonly metrics: PublishApiMetrics;
  readonly log: Logger;
  readonly refusal: () => string | null;
}

export function attachPublishApi(app: TemplatedApp, options: PublishApiOptions, deps: PublishApiDeps): void {
  const authorized = apiKeyCheck(options.publishKey);

  const refuse = (res: HttpResponse, state: ResponseGuard, status: string, reason: string, code: (typeof ErrorCodes)[keyof typeof ErrorCodes]["code"], message: string, close = false): void => {
    deps.metrics.publishFailed(reason);
    deps.metrics.httpRequest("publish", Number(status.slice(0, 3)));
    sendError(res, state, status, { code, message }, close);
  };

  app.post("/v1/publish", (res, req) => {
    const state = guard(res);
    const authorization = req.getHeader("authorization");
    const declaredLength = req.getHeader("content-length");

    // Unread bodies are abandoned by closing the connection after the answer.
    if (!authorized(authorization)) {
      refuse(res, state, "401 Unauthorized", "unauthorized", ErrorCodes.unauthorized.code, "publish key required: Authorization: Bearer <PUBLISH_KEY>", true);
      return;
    }
    if (declaredLength !== "" && Number(declaredLength) > options.maxBodyBytes) {
      refuse(res, state, "413 Payload Too Large", "too_large", ErrorCodes.payloadTooLarge.code, `body larger than ${options.maxBodyBytes} bytes`, true);
      return;
    }
    const refusal = deps.refusal();
    if (refusal !== null) {
      refuse(res, state, "503 Service Unavailable", "unavailable", ErrorCodes.unavailable.code, refusal, true);
      return;
    }

    readBody(res, options.maxBodyBytes, (result) => {
      if (!result.ok) {
        refuse(res, state, "413 Payload Too Large", "too_large", ErrorCodes.payloadTooLarge.code, `body larger than ${options.maxBodyBytes} bytes`, true);
        return;
      }
      // Decoding would turn stray bytes into U+FFFD and publish that: refuse instead.
      if (!isUtf8(result.body)) {
        refuse(res, state, "400 Bad Request", "bad_request", ErrorCodes.badRequest.code, "body is not valid UTF-8");
        return;
      }
      let body: unknown;
      try {
        body = JSON.parse(result.body.toString("utf8"));
      } catch {
        refuse(res, state, "400 Bad Request", "bad_request", ErrorCodes.badRequest.code, "body is not valid JSON");
        return;
      }
      const validated = validatePublishBody(body, options.limits);
      if (!validated.ok) {
        if (validated.refusal === "forbidden") refuse(res, state, "403 Forbidden", "forbidden", ErrorCodes.forbidden.code, validated.message);
        else refuse(res, state, "400 Bad Request", "bad_request", ErrorCodes.badRequest.code, validated.message);
        return;
      }
      deps.publisher.publish(validated.requests).then(
        (results) => {
          deps.metrics.httpRequest("publish", 200);
          sendJson(res, state, "200 OK", validated.batch ? { results } : results[0]);
        },
        (err: unknown) => {
          // 503 means "the bus is down, retry"; a body that cannot be encoded is the caller's error.
          if (err instanceof PublishEncodeError) {
            deps.log.debug({ err, messages: validated.requests.length }, "publish refused: cannot encode");
            refuse(res, state, "400 Bad Request", "bad_request", ErrorCodes.badRequest.code, err.message);
            return;
          }
          deps.log.error({ err, messages: validated.requests.length }, "publish failed");
          const message =
            err instanceof PublishUncertainError
              ? `message bus unavailable; some of it may have been published (${err.message}): retry with the same idempotency keys`
              : "message bus unavailable, nothing was published; retry";
          refuse(res, state, "503 Service Unavailable", "broker", ErrorCodes.unavailable.code, message);
        },
      );
    });
  });
}
