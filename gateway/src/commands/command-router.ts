/**
 * Client commands, independent of the transport: raw WebSocket and Socket.IO
 * both hand (who, name, data) here and send back the reply it returns.
 */

import { ErrorCodes } from "../../../shared/src/codes.js";
import type { ErrorBody, JsonValue } from "../../../shared/src/protocol.js";
import type { PlaceBetResult } from "../../../shared/src/commands.js";

export type CommandReply = { readonly ok: true; readonly result: PlaceBetResult } | { readonly ok: false; readonly error: ErrorBody };

export interface CommandContext {
  /** The token's `sub`: commands act for this user, whatever the payload says. */
  readonly userId: string;
}

export interface CommandHandler {
  handle(context: CommandContext, data: JsonValue): Promise<CommandReply>;
}

export class CommandRouter {
  constructor(private readonly handlers: ReadonlyMap<string, CommandHandler>) {}

  async handle(context: CommandContext, name: string, data: JsonValue): Promise<CommandReply> {
    const handler = this.handlers.get(name);
    if (handler === undefined) {
      return { ok: false, error: { code: ErrorCodes.unknownCommand.code, message: `unknown command "${name.slice(0, 64)}"; known: ${[...this.handlers.keys()].join(", ")}` } };
    }
    return handler.handle(context, data);
  }
}
