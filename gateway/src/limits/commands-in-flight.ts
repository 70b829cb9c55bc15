/**
 * Commands in flight per user, on this node: a user may have at most
 * `maxPerUser` commands waiting for their replies here; more are answered
 * `too_many_commands` at once and never reach the batching writer. So one
 * user cannot fill WRITER_QUEUE_MAX for everyone else on the node.
 *
 * Per node, not per cluster, on purpose: the queue it protects is the
 * node's own, a count in Redis would add a round trip to every command, and
 * a user spread over N nodes holds at most N × maxPerUser of N queues, the
 * same share of each. The map holds only users with a command in flight.
 */

import { ErrorCodes } from "../../../shared/src/codes.js";
import type { JsonValue } from "../../../shared/src/protocol.js";
import type { CommandContext, CommandReply } from "../commands/command-router.js";
import type { CommandRunner } from "../transport/client-session.js";
import type { RateLimitMetrics } from "./rate-limit-metrics.js";

export class CommandsInFlight implements CommandRunner {
  private readonly inFlight = new Map<string, number>();

  constructor(
    private readonly runner: CommandRunner,
    private readonly maxPerUser: number,
    private readonly metrics: RateLimitMetrics,
  ) {}

  async handle(context: CommandContext, name: string, data: JsonValue): Promise<CommandReply> {
    const user = context.userId;
    const held = this.inFlight.get(user) ?? 0;
    if (held >= this.maxPerUser) {
      this.metrics.rateLimited("user_commands");
      return { ok: false, error: { code: ErrorCodes.tooManyCommands.code, message: `at most ${this.maxPerUser} commands in flight per user; retry once a reply arrives` } };
    }
    this.inFlight.set(user, held + 1);
    try {
      return await this.runner.handle(context, name, data);
    } finally {
      const left = (this.inFlight.get(user) ?? 1) - 1;
      if (left === 0) this.inFlight.delete(user);
      else this.inFlight.set(user, left);
    }
  }

  /** Users with a command in flight now. */
  get users(): number {
    return this.inFlight.size;
  }
}
