/**
 * A Lua script sent as EVALSHA on a connection that pipelines (ioredis
 * enableAutoPipelining), loaded with SCRIPT LOAD when Redis answers NOSCRIPT
 * (a restarted or flushed Redis) and then sent once more.
 *
 * Why not ioredis's defineCommand: it remembers which connection has the
 * script per socket object, and in a pipeline that object is new for every
 * pipeline, so each pipeline's first script call goes out as EVAL with the
 * whole Lua source. On the connect path (an admit and a history read per
 * socket) that sent kilobytes per batch for nothing.
 */

import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

/**
 * ioredis has `<command>Buffer` for every command, evalshaBuffer included,
 * but does not declare this one. (`callBuffer("evalsha", …)` would do, but
 * with auto-pipelining ioredis 5 drops the command name from it.)
 */
type BufferEvalsha = Redis & { evalshaBuffer(sha: string, numberOfKeys: number, ...keysAndArgs: Array<string | number>): Promise<unknown> };

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith("NOSCRIPT");
}

export class PipelinedScript {
  readonly sha: string;

  constructor(
    readonly lua: string,
    private readonly numberOfKeys: number,
  ) {
    this.sha = createHash("sha1").update(lua).digest("hex");
  }

  /** The script's reply, with strings as strings. Rejects as the command does; NOSCRIPT is handled. */
  run(redis: Redis, ...keysAndArgs: Array<string | number>): Promise<unknown> {
    return this.withLoad(redis, () => redis.evalsha(this.sha, this.numberOfKeys, ...keysAndArgs));
  }

  /** The same with strings as Buffers (binary frames, history entries). */
  runBuffer(redis: Redis, ...keysAndArgs: Array<string | number>): Promise<unknown> {
    return this.withLoad(redis, () => (redis as BufferEvalsha).evalshaBuffer(this.sha, this.numberOfKeys, ...keysAndArgs));
  }

  private async withLoad(redis: Redis, call: () => Promise<unknown>): Promise<unknown> {
    try {
      return await call();
    } catch (err) {
      if (!isNoScript(err)) throw err;
      await redis.script("LOAD", this.lua);
      return call();
    }
  }
}
