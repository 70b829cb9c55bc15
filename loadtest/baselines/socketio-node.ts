/**
 * Baseline (a): what a team would build with Socket.IO alone. Socket.IO on
 * Node's own HTTP server, clustered with @socket.io/redis-adapter, JWT checked
 * in a middleware, a `subscribe` event that joins a room, and a publish
 * endpoint that does `io.to(channel).emit("message", frame)`. With the Redis
 * adapter that emit is published to Redis for other nodes and broadcast
 * locally, the adapter's documented behaviour.
 *
 * Run by loadtest/bench.ts: PORT, JWT_SECRET, PUBLISH_KEY, REDIS_URL, REDIS_PREFIX.
 */

import { createServer } from "node:http";
import { Server } from "socket.io";
import { handlePublish, messageFrame, readEnv } from "./common.js";
import { baselineSocketIoServer, serveBaselineSocketIo } from "./socketio-app.js";

const env = readEnv();
const http = createServer((req, res) => handlePublish(env, req, res, (body) => io.to(body.channel).emit("message", messageFrame(body))));
const io = baselineSocketIoServer((options) => new Server(http, options));

serveBaselineSocketIo(io, "socketio-node", env.jwtSecret);

http.listen(env.port, "127.0.0.1", () => process.stdout.write(`listening ${env.port}\n`));
