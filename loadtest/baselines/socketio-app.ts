/**
 * What both Socket.IO baselines do with their server, whatever it is attached
 * to: clustered with @socket.io/redis-adapter (REDIS_URL, REDIS_PREFIX), the
 * JWT checked in a middleware, the user's room joined at connect, a
 * `subscribe` event that joins a room, a welcome, and a clean exit on SIGTERM.
 */

import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import type { Server, ServerOptions } from "socket.io";
import { verifySub } from "./common.js";

/** A Socket.IO server on the Redis adapter, which closes with its Redis connections on SIGTERM or SIGINT. */
export function baselineSocketIoServer(attach: (options: Partial<ServerOptions>) => Server): Server {
  const pub = new Redis(process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379");
  const sub = pub.duplicate();
  const io = attach({ serveClient: false, adapter: createAdapter(pub, sub, { key: `${process.env["REDIS_PREFIX"] ?? "bench"}:sio` }) });
  const stop = (): void => {
    void io.close();
    pub.disconnect();
    sub.disconnect();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  return io;
}

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
