/**
 * Every Redis connection of the node is opened here: the broker's publisher
 * and subscriber, the clock ledger, the ingest reader and Socket.IO's adapter
 * pair. Each role states how it behaves while Redis is away (queue commands
 * or fail fast, retries, resubscription); where Redis is, and how to reach it,
 * is decided in this module only.
 */

import { Redis } from "ioredis";
import type { Logger } from "pino";

/** A log field and the reason for each connection. */
export type RedisRole = "publisher" | "subscriber" | "clock" | "ingest" | "history" | "socketio-adapter" | "limits" | "control" | "cluster-state";

export interface RedisRoleOptions {
  /** Queue commands while disconnected and send them on reconnect (true), or fail them at once (false). */
  readonly offlineQueue: boolean;
  /** Reconnections a command waits through before it fails. */
  readonly maxRetriesPerRequest: number;
  /** Re-issue SUBSCRIBE after a reconnect (ioredis does it); false where the owner does it itself. Default true. */
  readonly autoResubscribe?: boolean;
  /**
   * Send again, after a reconnect, the commands that were sent but never
   * answered (ioredis's default, true). False for commands that must not run
   * twice: one may have run before the connection dropped.
   */
  readonly resendUnanswered?: boolean;
  /** Client-side bound on every command, in ms; none by default. */
  readonly commandTimeoutMs?: number;
}

export interface RedisConnections {
  /**
   * A new connection for `role`, already connecting; the call returns at once
   * and ioredis keeps reconnecting in the background. Connection errors are
   * logged with the role; the caller closes the connection.
   */
  open(role: RedisRole, options: RedisRoleOptions): Redis;
}

/**
 * `clientName` (the NODE_ID) names every connection `<clientName>/<role>`
 * (CLIENT SETNAME), so `CLIENT LIST` shows which node and role holds each
 * connection, and one node's connections can be told apart.
 */
export function redisConnections(url: string, log: Logger, clientName?: string): RedisConnections {
  return {
    open(role, options) {
      // lazyConnect, so the error listener is in place before the first attempt.
      const connection = new Redis(url, {
        lazyConnect: true,
        ...(clientName === undefined ? {} : { connectionName: `${clientName}/${role}` }),
        enableOfflineQueue: options.offlineQueue,
        maxRetriesPerRequest: options.maxRetriesPerRequest,
        autoResubscribe: options.autoResubscribe ?? true,
        autoResendUnfulfilledCommands: options.resendUnanswered ?? true,
        ...(options.commandTimeoutMs === undefined ? {} : { commandTimeout: options.commandTimeoutMs }),
      });
      connection.on("error", (err: Error) => log.warn({ err, role }, "redis connection error"));
      connection.connect().catch((err: Error) => log.warn({ err, role }, "redis not reachable yet, retrying"));
      return connection;
    },
  };
}
