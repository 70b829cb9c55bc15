/**
 * Baseline: plain Socket.IO attached to uWebSockets.js (`io.attachApp`), the
 * way its documentation shows, clustered with @socket.io/redis-adapter: the
 * JWT checked in a middleware, a `subscribe` event that joins a room, the
 * user's room joined at connect, and a publish endpoint that does
 * `io.to(channel).emit("message", frame)`. What the gateway's Socket.IO path
 * should cost no more than, per connection.
 *
 * Run by loadtest/bench.ts: PORT, JWT_SECRET, PUBLISH_KEY, REDIS_URL, REDIS_PREFIX.
 */

import { Server } from "socket.io";
import uWS from "uWebSockets.js";
import { messageFrame, readEnv } from "./common.js";
import { baselineSocketIoServer, serveBaselineSocketIo } from "./socketio-app.js";
import { uwsPublishRoute } from "./uws-common.js";

const env = readEnv();
const app = uWS.App();
const io = baselineSocketIoServer((options) => new Server(options));
io.attachApp(app);
uwsPublishRoute(app, env, (body) => io.to(body.channel).emit("message", messageFrame(body)));

serveBaselineSocketIo(io, "socketio-uws", env.jwtSecret);

app.listen("127.0.0.1", env.port, (token) => {
  if (!token) {
    process.stderr.write(`cannot listen on ${env.port}\n`);
    process.exit(1);
  }
  process.stdout.write(`listening ${env.port}\n`);
});
