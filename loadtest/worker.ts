/**
 * One load generator process (forked by loadtest/bench.ts). Holds up to
 * ~19k client sockets (the per-process descriptor limit on our machines is
 * 20,000), each authenticated with its own token and bound to one of many
 * 127.0.0.x source addresses, subscribed to one channel (or one of a list). Records per-message
 * latency (receive time − the frame's publish `ts`) into a fixed-bucket
 * histogram, deliveries, drops, reconnects and errors.
 *
 * Speaks the raw `/ws` protocol or Socket.IO's wire protocol (engine.io v4
 * over a plain WebSocket: "0" open, "40" connect, "42" event, "43" ack,
 * "2"/"3" ping/pong). The Socket.IO client library would cost the generator
 * several times more CPU and memory per socket than `ws` on its own, which
 * would make the Socket.IO rows measure the generator rather than the server.
 *
 * Every loop is bounded: connection attempts by `maxRetries` per socket and
 * the connect phase by `connectBudgetMs`; the process exits when the
 * controller disconnects.
 */

import type { Socket } from "node:net";
import WebSocket from "ws";
import { LatencyHistogram } from "./lib/histogram.js";
import { mintToken } from "./lib/tokens.js";
import type { ConnectResult, ControllerMessage, WorkerConfig, WorkerMessage, WorkerStats } from "./lib/worker-protocol.js";
import { exitWithController } from "./lib/worker-lifetime.js";

const HANDSHAKE_TIMEOUT_MS = 15_000;
const RETRY_DELAY_MS = 500;

const RAW_MESSAGE_PREFIX = Buffer.from('{"type":"message"');
const SIO_MESSAGE_PREFIX = Buffer.from('42["message"');
const TS_MARKER = Buffer.from('"ts":');

type Phase = "connecting" | "subscribing" | "subscribed" | "closed";

interface Client {
  readonly index: number;
  ws: WebSocket | null;
  /** The connection under `ws`, for its byte count. */
  tcp: Socket | null;
  phase: Phase;
  attempts: number;
}

function send(message: WorkerMessage): void {
  process.send?.(message);
}


/** Reads the integer after the last `"ts":` in a frame without decoding it to a string. */
function readTs(frame: Buffer): number {
  let at = frame.lastIndexOf(TS_MARKER);
  if (at === -1) return Number.NaN;
  at += TS_MARKER.length;
  let value = 0;
  let digits = 0;
  for (; at < frame.length; at++) {
    const c = frame[at]!;
    if (c < 0x30 || c > 0x39) break;
    value = value * 10 + (c - 0x30);
    digits++;
  }
  return digits > 0 ? value : Number.NaN;
}

function startsWith(frame: Buffer, prefix: Buffer): boolean {
  return frame.length >= prefix.length && frame.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

class Generator {
  private readonly clients: Client[] = [];
  private readonly latency = new LatencyHistogram();
  private readonly errors = new Map<string, number>();
  private readonly nowS = Math.floor(Date.now() / 1000);
  private established = 0;
  /** Sockets between open() and subscribed (or closed); an O(1) count for the admission loop. */
  private inFlight = 0;
  private givenUp = 0;
  private windowOpen = false;
  private delivered = 0;
  private payloadBytes = 0;
  private wireBytesAtWindow = 0;
  private subscribedAtWindow = 0;
  private drops = 0;
  private reconnects = 0;
  private cpuAtWindow = process.cpuUsage();
  private closing = false;
  private onSettled: (() => void) | null = null;

  constructor(private readonly config: WorkerConfig) {}

  async connectAll(): Promise<ConnectResult> {
    const started = Date.now();
    const deadline = started + this.config.connectBudgetMs;
    for (let i = 0; i < this.config.sockets; i++) this.clients.push({ index: i, ws: null, tcp: null, phase: "closed", attempts: 0 });
    const progress = setInterval(() => send({ type: "progress", established: this.established, failed: this.givenUp }), 1000);
    try {
      // A fixed window of handshakes in flight: opening 19k at once would
      // overflow the listen backlog (somaxconn 4096) and measure SYN retries.
      let next = 0;
      await new Promise<void>((resolve) => {
        this.onSettled = () => {
          while (next < this.clients.length && this.inFlight < this.config.concurrency && Date.now() < deadline) {
            this.open(this.clients[next++]!);
          }
          const pending = this.clients.length - this.established - this.givenUp;
          if (pending === 0 || (Date.now() >= deadline)) resolve();
        };
        const budget = setTimeout(resolve, this.config.connectBudgetMs);
        budget.unref();
        this.onSettled();
      });
    } finally {
      clearInterval(progress);
      this.onSettled = null;
    }
    return { established: this.established, failed: this.clients.length - this.established, errors: Object.fromEntries(this.errors), seconds: (Date.now() - started) / 1000 };
  }

  openWindow(): void {
    this.windowOpen = true;
    this.delivered = 0;
    this.payloadBytes = 0;
    this.wireBytesAtWindow = this.wireBytesRead();
    this.latency.count = 0;
    this.subscribedAtWindow = this.clients.filter((c) => c.phase === "subscribed").length;
    this.cpuAtWindow = process.cpuUsage();
  }

  deliveredSoFar(): number {
    return this.delivered;
  }

  stats(): WorkerStats {
    const cpu = process.cpuUsage(this.cpuAtWindow);
    return {
      subscribedAtWindow: this.subscribedAtWindow,
      delivered: this.delivered,
      latency: this.latency.snapshot(),
      drops: this.drops,
      reconnects: this.reconnects,
      errors: Object.fromEntries(this.errors),
      wireBytes: this.wireBytesRead() - this.wireBytesAtWindow,
      payloadBytes: this.payloadBytes,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      rssBytes: process.memoryUsage.rss(),
    };
  }

  async closeAll(): Promise<void> {
    this.closing = true;
    for (const client of this.clients) client.ws?.terminate();
    // terminate() destroys the TCP socket; give the close events a moment.
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  /** A socket replaced by a reconnect takes its count with it; drops are reported next to the figure. */
  private wireBytesRead(): number {
    let bytes = 0;
    for (const client of this.clients) bytes += client.tcp?.bytesRead ?? 0;
    return bytes;
  }

  private countError(kind: string): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
  }

  private open(client: Client): void {
    client.attempts++;
    client.phase = "connecting";
    this.inFlight++;
    const target = this.config.targets[client.index % this.config.targets.length]!;
    // sub is unique per socket across workers and scenarios (subPrefix names the run).
    const token = mintToken(this.config.jwtSecret, `${this.config.subPrefix}${this.config.workerIndex}-${client.index}`, this.nowS);
    // Socket.IO verifies the token at the engine.io handshake, sent as a header the way socket.io-client's extraHeaders does.
    const url = this.config.protocol === "raw" ? `${target}/ws?token=${token}` : `${target}/socket.io/?EIO=4&transport=websocket`;
    const ws = new WebSocket(url, {
      ...(this.config.protocol === "raw" ? {} : { headers: { authorization: `Bearer ${token}` } }),
      localAddress: this.config.sourceAddresses[client.index % this.config.sourceAddresses.length],
      perMessageDeflate: this.config.offerDeflate,
      skipUTF8Validation: true,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    client.ws = ws;
    client.tcp = null;
    ws.once("upgrade", (response) => {
      if (client.ws === ws) client.tcp = response.socket;
    });
    let wasSubscribed = false;
    const subscribed = (): void => {
      wasSubscribed = true;
      client.phase = "subscribed";
      this.inFlight--;
      this.established++;
      this.onSettled?.();
    };
    ws.on("unexpected-response", (_req, res) => {
      this.countError(`http_${res.statusCode ?? 0}`);
      res.resume();
      ws.terminate();
    });
    ws.on("error", (err: NodeJS.ErrnoException) => this.countError(err.code ?? err.message.slice(0, 40)));
    ws.on("close", () => {
      if (client.ws !== ws) return;
      const phase = client.phase;
      client.phase = "closed";
      client.ws = null;
      if (phase === "connecting" || phase === "subscribing") this.inFlight--;
      if (this.closing) return;
      if (wasSubscribed) {
        this.drops++;
        this.established--;
      }
      if (phase !== "subscribed" && !wasSubscribed) this.countError(`closed_while_${phase}`);
      if (client.attempts > this.config.maxRetries) {
        this.givenUp++;
        this.onSettled?.();
        return;
      }
      // A freed handshake slot admits the next socket; the retry joins later.
      this.onSettled?.();
      const timer = setTimeout(() => {
        if (this.closing) return;
        if (wasSubscribed) this.reconnects++;
        this.open(client);
      }, RETRY_DELAY_MS + Math.random() * RETRY_DELAY_MS);
      timer.unref();
    });
    if (this.config.protocol === "raw") {
      ws.on("message", (data: Buffer) => {
        if (client.phase === "subscribed") {
          if (startsWith(data, RAW_MESSAGE_PREFIX)) this.delivery(data);
          return;
        }
        const text = data.toString("utf8");
        if (text.startsWith('{"type":"welcome"')) {
          client.phase = "subscribing";
          ws.send(JSON.stringify({ type: "subscribe", id: 1, channel: this.channelOf(client) }));
        } else if (text.startsWith('{"type":"reply"')) {
          const reply = JSON.parse(text) as { ok?: boolean; error?: { code?: string } };
          if (reply.ok === true) subscribed();
          else {
            this.countError(`subscribe_${reply.error?.code ?? "refused"}`);
            ws.terminate();
          }
        }
      });
    } else {
      ws.on("message", (data: Buffer) => {
        if (startsWith(data, SIO_MESSAGE_PREFIX)) {
          if (client.phase === "subscribed") this.delivery(data);
          return;
        }
        const text = data.toString("utf8");
        if (text === "2") ws.send("3"); // engine.io heartbeat: the server pings, the client answers
        else if (text.startsWith("0")) ws.send(`40${JSON.stringify({ token })}`);
        else if (text.startsWith('42["welcome"')) {
          client.phase = "subscribing";
          ws.send(`421${JSON.stringify(["subscribe", { channel: this.channelOf(client) }])}`);
        } else if (text.startsWith("431")) {
          const [answer] = JSON.parse(text.slice(3)) as [{ ok?: boolean; error?: { code?: string } }];
          if (answer.ok === true) subscribed();
          else {
            this.countError(`subscribe_${answer.error?.code ?? "refused"}`);
            ws.terminate();
          }
        } else if (text.startsWith("44")) {
          this.countError("connect_error");
          ws.terminate();
        }
      });
    }
  }

  private channelOf(client: Client): string {
    const { channels, channel } = this.config;
    return channels === undefined || channels.length === 0 ? channel : (channels[client.index % channels.length] as string);
  }

  private delivery(frame: Buffer): void {
    if (!this.windowOpen) return;
    // ts is whole milliseconds at the publishing node; performance.now() adds
    // sub-millisecond resolution to this side, so latency is biased up by
    // ~0.5 ms on average, never down.
    const latency = performance.timeOrigin + performance.now() - readTs(frame);
    this.delivered++;
    this.payloadBytes += frame.length;
    this.latency.record(latency);
  }
}

let generator: Generator | null = null;

process.on("message", (raw: ControllerMessage) => {
  void (async () => {
    switch (raw.type) {
      case "connect":
        generator = new Generator(raw.config);
        send({ type: "connected", result: await generator.connectAll() });
        return;
      case "window":
        generator?.openWindow();
        send({ type: "window-open" });
        return;
      case "count":
        send({ type: "count", delivered: generator?.deliveredSoFar() ?? 0 });
        return;
      case "report":
        if (generator) send({ type: "report", stats: generator.stats() });
        return;
      case "close":
        await generator?.closeAll();
        send({ type: "closed" });
        process.exit(0);
    }
  })().catch((err: unknown) => {
    process.stderr.write(`worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
});

exitWithController();
