/**
 * Baseline (b): the naive broadcast loop. A `ws` server on Node's HTTP server,
 * JWT checked before the upgrade, channel → Set of sockets, and a publish
 * that does `JSON.stringify` + `send` once per recipient. One process, no
 * Redis: the simplest thing that works on one node.
 *
 * Run by loadtest/bench.ts: PORT, JWT_SECRET, PUBLISH_KEY.
 */

import { createServer } from "node:http";
import { WebSocketServer, type WebSocket } from "ws";
import { handlePublish, messageFrame, readEnv, verifySub } from "./common.js";

const env = readEnv();
const channels = new Map<string, Set<WebSocket>>();

function join(ws: WebSocket, channel: string): void {
  let members = channels.get(channel);
  if (members === undefined) channels.set(channel, (members = new Set()));
  members.add(ws);
}

const http = createServer((req, res) =>
  handlePublish(env, req, res, (body) => {
    const frame = messageFrame(body);
    // Deliberately naive: one serialization per recipient.
    for (const ws of channels.get(body.channel) ?? []) ws.send(JSON.stringify(frame));
  }),
);
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

http.on("upgrade", (req, socket, head) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  const userId = url.pathname === "/ws" ? verifySub(url.searchParams.get("token"), env.jwtSecret) : null;
  if (userId === null) {
    socket.end("HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n");
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const joined = new Set<string>([`user:${userId}`]);
    join(ws, `user:${userId}`);
    ws.on("message", (data) => {
      let frame: { type?: unknown; id?: unknown; channel?: unknown };
      try {
        frame = JSON.parse((data as Buffer).toString("utf8")) as typeof frame;
      } catch {
        ws.send(JSON.stringify({ type: "error", error: { code: "bad_request", message: "frame is not valid JSON" } }));
        return;
      }
      if (frame.type === "subscribe" && typeof frame.channel === "string") {
        join(ws, frame.channel);
        joined.add(frame.channel);
        ws.send(JSON.stringify({ type: "reply", id: frame.id, ok: true, channel: frame.channel }));
      }
    });
    ws.on("close", () => {
      for (const channel of joined) channels.get(channel)?.delete(ws);
    });
    ws.send(JSON.stringify({ type: "welcome", node: "ws-naive", user: userId, serverTime: Date.now(), channels: [...joined], expiresAt: null }));
  });
});

http.listen(env.port, "127.0.0.1", () => process.stdout.write(`listening ${env.port}\n`));

const stop = (): void => {
  for (const ws of wss.clients) ws.terminate();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
