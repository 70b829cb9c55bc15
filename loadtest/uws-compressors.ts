/**
 * node dist/loadtest/uws-compressors.js
 *
 * What uWebSockets.js' compressors do in the build this project runs, outside
 * the gateway (docs/performance.md, "Compression"):
 *
 * 1. Per compressor: the extension the handshake agrees, and the wire bytes
 *    of one ~1 KB frame published five times to one `ws` client. A compressor
 *    with a sliding window larger than the frame shrinks the repeats to a few
 *    bytes; one that does not, does not.
 * 2. For the shared compressor: the publishing process' CPU per delivery of a
 *    ~3 KB frame, compressed and not, at two subscriber counts. A frame
 *    compressed once per publish would cost the same extra CPU per publish at
 *    both counts; one compressed per recipient costs the same extra per
 *    delivery.
 *
 * The uWS app runs in a forked child so its CPU is measured apart from the
 * clients'. Loopback only; every socket is closed at the end.
 */

import { fork, type ChildProcess } from "node:child_process";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import uWS from "uWebSockets.js";
import WebSocket from "ws";
import { nextMessage } from "./lib/workers.js";

const COMPRESSORS: Readonly<Record<string, uWS.CompressOptions>> = {
  SHARED_COMPRESSOR: uWS.SHARED_COMPRESSOR,
  DEDICATED_COMPRESSOR_3KB: uWS.DEDICATED_COMPRESSOR_3KB,
  DEDICATED_COMPRESSOR_4KB: uWS.DEDICATED_COMPRESSOR_4KB,
  DEDICATED_COMPRESSOR_32KB: uWS.DEDICATED_COMPRESSOR_32KB,
  DEDICATED_COMPRESSOR_256KB: uWS.DEDICATED_COMPRESSOR_256KB,
};
const PUBLISHES = 10;
const SUBSCRIBER_COUNTS = [200, 1000] as const;

type ToChild = { type: "publish"; frame: string; count: number; compress: boolean } | { type: "stop" };
type FromChild = { type: "port"; port: number } | { type: "published"; cpuMicros: number };

/** A JSON frame of about `bytes`, shaped like a forecast. */
function frame(bytes: number): string {
  const runners: unknown[] = [];
  let text = "";
  for (let r = 0; text.length < bytes; r++) {
    runners.push({ runner: r + 1, name: `Runner ${r + 1}`, odds: ((r * 1.37) % 9).toFixed(2), history: Array.from({ length: 12 }, (_, k) => 1000 + ((k * 17 + r * 7) % 97)) });
    text = JSON.stringify({ event: "forecast_update", runners });
  }
  return text;
}

// ------------------------------------------------------------------ child: the uWS app

function runApp(compression: uWS.CompressOptions): void {
  const send = (message: FromChild): void => void process.send?.(message);
  const app = uWS.App().ws("/*", {
    compression,
    maxPayloadLength: 64 * 1024,
    open: (ws) => {
      ws.subscribe("t");
    },
  });
  app.listen("127.0.0.1", 0, (token) => {
    if (token === false) throw new Error("cannot listen");
    send({ type: "port", port: uWS.us_socket_local_port(token) });
  });
  process.on("message", (message: ToChild) => {
    if (message.type === "stop") process.exit(0);
    const before = process.cpuUsage();
    for (let i = 0; i < message.count; i++) app.publish("t", message.frame, false, message.compress);
    // uWS writes a publish to its subscribers when the loop iteration ends: measure after that.
    setImmediate(() => {
      const used = process.cpuUsage(before);
      send({ type: "published", cpuMicros: used.user + used.system });
    });
  });
  process.on("disconnect", () => process.exit(0));
}

// ------------------------------------------------------------------ parent: clients and figures

class AppProcess {
  private constructor(private readonly child: ChildProcess) {}

  static async start(compressor: string): Promise<{ app: AppProcess; port: number }> {
    const child = fork(fileURLToPath(import.meta.url), ["--app", compressor], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const app = new AppProcess(child);
    const ready = await app.next("port");
    return { app, port: ready.port };
  }

  next<T extends FromChild["type"]>(type: T, timeoutMs = 30_000): Promise<Extract<FromChild, { type: T }>> {
    return nextMessage<FromChild, T>(this.child, type, timeoutMs, "the uWS app");
  }

  send(message: ToChild): void {
    this.child.send(message);
  }

  stop(): void {
    if (this.child.connected) this.send({ type: "stop" });
  }
}

interface Client {
  readonly ws: WebSocket;
  readonly tcp: Socket;
  readonly extensions: string;
  received: number;
}

async function connectClient(port: number): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: true });
  const upgraded = new Promise<{ tcp: Socket; extensions: string }>((resolve, reject) => {
    ws.once("upgrade", (response) => resolve({ tcp: response.socket, extensions: String(response.headers["sec-websocket-extensions"] ?? "") }));
    ws.once("error", reject);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const client: Client = { ws, ...(await upgraded), received: 0 };
  ws.on("message", () => client.received++);
  return client;
}

async function untilReceived(clients: readonly Client[], count: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (clients.some((c) => c.received < count)) {
    if (Date.now() > deadline) throw new Error(`deliveries missing after 30 s (want ${count} each)`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function windows(): Promise<string[]> {
  const text = frame(950);
  const lines = [`| compressor | agreed extension | wire bytes of a ${text.length}-byte frame, published 5 times |`, "|---|---|---|"];
  for (const name of Object.keys(COMPRESSORS)) {
    const { app, port } = await AppProcess.start(name);
    try {
      const client = await connectClient(port);
      const sizes: number[] = [];
      for (let i = 1; i <= 5; i++) {
        const before = client.tcp.bytesRead;
        app.send({ type: "publish", frame: text, count: 1, compress: true });
        await app.next("published");
        await untilReceived([client], i);
        sizes.push(client.tcp.bytesRead - before);
      }
      client.ws.terminate();
      lines.push(`| ${name} | \`${client.extensions}\` | ${sizes.join(", ")} |`);
    } finally {
      app.stop();
    }
  }
  return lines;
}

async function perRecipient(): Promise<string[]> {
  const text = frame(3000);
  const lines = [`| subscribers | compress | CPU µs per publish | CPU µs per delivery | wire bytes per delivery |`, "|---:|---|---:|---:|---:|"];
  for (const subscribers of SUBSCRIBER_COUNTS) {
    const { app, port } = await AppProcess.start("SHARED_COMPRESSOR");
    const clients: Client[] = [];
    try {
      for (let i = 0; i < subscribers; i++) clients.push(await connectClient(port));
      let expected = 0;
      for (const compress of [false, true, false, true]) {
        const before = clients.reduce((sum, c) => sum + c.tcp.bytesRead, 0);
        app.send({ type: "publish", frame: text, count: PUBLISHES, compress });
        const { cpuMicros } = await app.next("published");
        expected += PUBLISHES;
        await untilReceived(clients, expected);
        const wire = clients.reduce((sum, c) => sum + c.tcp.bytesRead, 0) - before;
        const deliveries = PUBLISHES * subscribers;
        lines.push(`| ${subscribers} | ${compress} | ${(cpuMicros / PUBLISHES).toFixed(0)} | ${(cpuMicros / deliveries).toFixed(2)} | ${(wire / deliveries).toFixed(0)} |`);
      }
    } finally {
      for (const client of clients) client.ws.terminate();
      app.stop();
    }
  }
  return lines;
}

async function main(): Promise<void> {
  const report = [
    "## uWS compressors: sliding window in use",
    "",
    ...(await windows()),
    "",
    `## SHARED_COMPRESSOR: CPU of the publishing process, ${PUBLISHES} publishes of a ~3 KB frame (each setting twice)`,
    "",
    ...(await perRecipient()),
    "",
  ];
  process.stdout.write(`${report.join("\n")}\n`);
}

const appFlag = process.argv.indexOf("--app");
if (appFlag !== -1) {
  const compression = COMPRESSORS[process.argv[appFlag + 1] ?? ""];
  if (compression === undefined) throw new Error(`unknown compressor ${process.argv[appFlag + 1] ?? ""}`);
  runApp(compression);
} else {
  main().catch((err: unknown) => {
    process.stderr.write(`uws-compressors failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
