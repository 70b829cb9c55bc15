/**
 * The cluster's control channel: one Redis pub/sub channel every node
 * subscribes to, carrying the server API's commands that act on sockets
 * wherever they are (disconnect a user, revoke a user's tokens).
 *
 * Pub/sub delivers at most once, to the nodes subscribed at that moment. A
 * node whose subscriber was away hears `onReady` again when it is back and
 * reloads what is stored (revocations live in Redis); a disconnect published
 * while a node was cut off from Redis is lost for that node, whose sockets
 * were then refused new work anyway.
 */

import type { RedisClient } from "../redis/connections.js";
import type { Logger } from "pino";
import { isValidSub } from "../../../shared/src/channels.js";
import { isPlainObject } from "../../../shared/src/json.js";

/** Longest `reason` of a disconnect: it goes into the close frame, which holds at most 123 bytes. */
export const MAX_DISCONNECT_REASON_BYTES = 100;

export type ControlMessage =
  | { readonly type: "disconnect"; readonly user: string; readonly reason?: string }
  | { readonly type: "revoke"; readonly user: string; readonly before: number; readonly until: number };

/** Whether `reason` can be a close frame's reason: short UTF-8 without control characters. */
export function isValidDisconnectReason(reason: string): boolean {
  // eslint-disable-next-line no-control-regex
  return reason.length > 0 && Buffer.byteLength(reason, "utf8") <= MAX_DISCONNECT_REASON_BYTES && !/[\u0000-\u001f\u007f]/.test(reason);
}

/** A control message from its JSON text, or null for anything else: every node receives every message. */
export function parseControlMessage(text: string): ControlMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isPlainObject(value)) return null;
  const { type, user } = value;
  if (typeof user !== "string" || !isValidSub(user)) return null;
  if (type === "disconnect") {
    const reason = value["reason"];
    if (reason === undefined) return { type, user };
    return typeof reason === "string" && isValidDisconnectReason(reason) ? { type, user, reason } : null;
  }
  if (type === "revoke") {
    const { before, until } = value;
    if (typeof before !== "number" || typeof until !== "number" || !Number.isSafeInteger(before) || !Number.isSafeInteger(until)) return null;
    return { type, user, before, until };
  }
  return null;
}

export interface ControlHandler {
  onMessage(message: ControlMessage): void;
  /** The subscription is in place (first time, or after Redis came back): reload anything stored. */
  onReady(): void;
}

export interface ControlMetrics {
  /** One control message received: its type, or `malformed`. */
  controlMessage(type: ControlMessage["type"] | "malformed"): void;
}

export class ControlChannel {
  private ready = false;
  private closed = false;

  constructor(
    private readonly subscriber: RedisClient,
    private readonly commands: RedisClient,
    private readonly channel: string,
    private readonly handler: ControlHandler,
    private readonly metrics: ControlMetrics,
    private readonly log: Logger,
  ) {
    // Subscribed again on every 'ready', by us: ioredis's autoResubscribe is off for this role.
    subscriber.on("ready", () => void this.subscribe());
    subscriber.on("close", () => {
      this.ready = false;
    });
    subscriber.on("message", (channel: string, text: string) => this.received(channel, text));
  }

  /** Whether commands published now reach this node. */
  isReady(): boolean {
    return this.ready;
  }

  /** Sends a message to every node, this one included. Rejects when Redis cannot take it. */
  async publish(message: ControlMessage): Promise<void> {
    await this.commands.publish(this.channel, JSON.stringify(message));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ready = false;
    await Promise.allSettled([this.subscriber.quit()]);
    this.subscriber.disconnect();
  }

  private async subscribe(): Promise<void> {
    try {
      await this.subscriber.subscribe(this.channel);
    } catch (err) {
      // The connection dropped meanwhile; the next 'ready' tries again.
      this.log.warn({ err }, "control channel subscribe failed");
      return;
    }
    this.ready = true;
    this.handler.onReady();
  }

  /** Runs in ioredis's data handler: nothing may escape. */
  private received(channel: string, text: string): void {
    if (channel !== this.channel) return;
    const message = parseControlMessage(text);
    if (message === null) {
      this.metrics.controlMessage("malformed");
      this.log.warn({ bytes: text.length }, "dropped a control message that is not one");
      return;
    }
    this.metrics.controlMessage(message.type);
    try {
      this.handler.onMessage(message);
    } catch (err) {
      this.log.error({ err, type: message.type }, "control message failed");
    }
  }
}
