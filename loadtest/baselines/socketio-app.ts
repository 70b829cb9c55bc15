/**
 * What both Socket.IO baselines do with their server, whatever it is attached
 * to: the JWT checked in a middleware, the user's room joined at connect, a
 * `subscribe` event that joins a room, and a welcome.
 */

import type { Server } from "socket.io";
import { verifySub } from "./common.js";

export function serveBaselineSocketIo(io: Server, nodeName: string, jwtSecret: string): void {
  io.use((socket, next) => {
    const auth = socket.handshake.auth as Record<string, unknown>;
    const userId = verifySub(auth["token"], jwtSecret);
    if (userId === null) next(new Error("invalid_token"));
    else {
      (socket.data as { sub?: string }).sub = userId;
      next();
    }
  });

  io.on("connection", (socket) => {
    const userId = String((socket.data as { sub?: string }).sub);
    void socket.join(`user:${userId}`);
    socket.on("subscribe", (request: { channel?: unknown }, ack?: (answer: object) => void) => {
      const channel = typeof request?.channel === "string" ? request.channel : null;
      if (channel === null) {
        ack?.({ ok: false, error: { code: "bad_request", message: "subscribe needs { channel }" } });
        return;
      }
      void socket.join(channel);
      ack?.({ ok: true, channel });
    });
    socket.emit("welcome", { node: nodeName, user: userId, serverTime: Date.now(), channels: [`user:${userId}`], expiresAt: null });
  });
}
