/**
 * What both baseline servers share with the gateway, so the comparison is the
 * same workload: HS256 JWT check before a socket is accepted, the `message`
 * frame with the same fields (ts = publish time at the server, last), and a
 * publish endpoint with the gateway's body shape and bearer key.
 */

import { createSecretKey, type KeyObject } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import jwt from "jsonwebtoken";

export interface BaselineEnv {
  readonly port: number;
  readonly jwtSecret: string;
  readonly publishKey: string;
}

export function readEnv(): BaselineEnv {
  const port = Number(process.env["PORT"]);
  const jwtSecret = process.env["JWT_SECRET"] ?? "";
  const publishKey = process.env["PUBLISH_KEY"] ?? "";
  if (!Number.isInteger(port) || port <= 0 || jwtSecret.length < 16 || publishKey.length < 16) {
    throw new Error("baseline: PORT, JWT_SECRET (>= 16 chars) and PUBLISH_KEY (>= 16 chars) are required");
  }
  return { port, jwtSecret, publishKey };
}

const keys = new Map<string, KeyObject>();

/**
 * The token's `sub`, or null when the token is missing, expired or badly
 * signed. With a key object made once per secret: jsonwebtoken given the
 * string builds one per call (~2,900 checks/s), which would make the
 * baselines' connect times measure key handling rather than the servers.
 */
export function verifySub(token: unknown, secret: string): string | null {
  if (typeof token !== "string" || token.length === 0) return null;
  let key = keys.get(secret);
  if (key === undefined) keys.set(secret, (key = createSecretKey(Buffer.from(secret))));
  try {
    const claims = jwt.verify(token, key, { algorithms: ["HS256"] });
    return typeof claims === "object" && typeof claims.sub === "string" ? claims.sub : null;
  } catch {
    // A refused token is the expected outcome here, not an infrastructure error: the caller answers 401.
    return null;
  }
}

export interface PublishBody {
  readonly channel: string;
  readonly event: string;
  readonly data: unknown;
}

export interface MessageFrame extends PublishBody {
  readonly type: "message";
  readonly offset: number;
  readonly epoch: string;
  readonly ts: number;
}

const EPOCH = "baseline";
const offsets = new Map<string, number>();

export function messageFrame(body: PublishBody): MessageFrame {
  const offset = (offsets.get(body.channel) ?? 0) + 1;
  offsets.set(body.channel, offset);
  return { type: "message", channel: body.channel, event: body.event, data: body.data, offset, epoch: EPOCH, ts: Date.now() };
}

const MAX_BODY_BYTES = 1024 * 1024;

/** POST /v1/publish with `{channel, event, data}`; anything else is 404/401/400. */
export function handlePublish(env: BaselineEnv, req: IncomingMessage, res: ServerResponse, publish: (body: PublishBody) => void): void {
  if (req.method !== "POST" || req.url !== "/v1/publish") {
    res.writeHead(404).end();
    return;
  }
  if (req.headers.authorization !== `Bearer ${env.publishKey}`) {
    res.writeHead(401).end();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) req.destroy();
    else chunks.push(chunk);
  });
  req.on("end", () => {
    let body: PublishBody;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as PublishBody;
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (typeof body.channel !== "string" || typeof body.event !== "string") {
      res.writeHead(400).end();
      return;
    }
    publish(body);
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
}
