/**
 * The floor: a bare uWebSockets.js server that does nothing but what the
 * generator needs to count a socket (a welcome, a reply to `subscribe`) and
 * `app.publish` a publish to its topic. No token check, no Redis, no
 * personal channel, no per-socket state: what any gateway on uWS costs at
 * least, per connection and per connect.
 *
 * Run by loadtest/bench.ts: PORT, PUBLISH_KEY (JWT_SECRET is ignored).
 */

import uWS from "uWebSockets.js";
import { messageFrame, readEnv } from "./common.js";
import { uwsPublishRoute } from "./uws-common.js";

const env = readEnv();
const app = uWS.App();

app.ws("/ws", {
  idleTimeout: 120,
  sendPingsAutomatically: true,
  maxPayloadLength: 64 * 1024,
  upgrade: (res, req, context) => {
    res.upgrade({}, req.getHeader("sec-websocket-key"), req.getHeader("sec-websocket-protocol"), req.getHeader("sec-websocket-extensions"), context);
  },
  open: (ws) => {
    ws.send(JSON.stringify({ type: "welcome", node: "uws-bare", user: null, serverTime: Date.now(), channels: [], expiresAt: null }));
  },
  message: (ws, message) => {
    let frame: { type?: unknown; id?: unknown; channel?: unknown };
    try {
      frame = JSON.parse(Buffer.from(message).toString("utf8")) as typeof frame;
    } catch {
      ws.send(JSON.stringify({ type: "error", error: { code: "bad_request", message: "frame is not valid JSON" } }));
      return;
    }
    if (frame.type === "subscribe" && typeof frame.channel === "string") {
      ws.subscribe(frame.channel);
      ws.send(JSON.stringify({ type: "reply", id: frame.id, ok: true, channel: frame.channel }));
    }
  },
});
uwsPublishRoute(app, env, (body) => {
  app.publish(body.channel, JSON.stringify(messageFrame(body)));
});

app.listen("127.0.0.1", env.port, (token) => {
  if (!token) {
    process.stderr.write(`cannot listen on ${env.port}\n`);
    process.exit(1);
  }
  process.stdout.write(`listening ${env.port}\n`);
});

const stop = (): void => process.exit(0);
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
