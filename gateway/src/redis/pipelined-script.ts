/**
 * A Lua script sent as EVALSHA on a connection that pipelines (ioredis
 * enableAutoPipelining), and sent once more as EVAL when Redis answers
 * NOSCRIPT (a restarted or flushed Redis).
 *
 * Why not ioredis's defineCommand: it remembers which connection has the
 * script per socket object, and in a pipeline that object is new for every
 * pipeline, so each pipeline's first script call goes out as EVAL with the
 * whole Lua source. On the connect path (an admit and a history read per
 * socket) that sent kilobytes per batch for nothing.
 *
 * EVAL, not SCRIPT LOAD then EVALSHA: EVAL runs the script and leaves it
 * cached on the server that ran it, which on a Cluster is the master of the
 * call's slot (SCRIPT LOAD would reach one node of the cluster, perhaps not
 * that one).
 */

import { createHash } from "node:crypto";
import type { RedisClient } from "./connections.js";

/**
 * ioredis has `<command>Buffer` for every command, evalshaBuffer and
 * evalBuffer included, but does not declare these. (`callBuffer("evalsha", …)`
 * would do, but with auto-pipelining ioredis 5 drops the command name from it.)
 */
type BufferScripts = RedisClient & {
  evalshaBuffer(sha: string, numberOfKeys: number, ...keysAndArgs: Array<string | number>): Promise<unknown>;
  evalBuffer(lua: string, numberOfKeys: number, ...keysAndArgs: Array<string | number>): Promise<unknown>;
};

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
  run(redis: RedisClient, ...keysAndArgs: Array<string | number>): Promise<unknown> {
    return this.withFallback(
      () => redis.evalsha(this.sha, this.numberOfKeys, ...keysAndArgs),
      () => redis.eval(this.lua, this.numberOfKeys, ...keysAndArgs),
    );
  }

  /** The same with strings as Buffers (binary frames, history entries). */
  runBuffer(redis: RedisClient, ...keysAndArgs: Array<string | number>): Promise<unknown> {
    const buffers = redis as BufferScripts;
    return this.withFallback(
      () => buffers.evalshaBuffer(this.sha, this.numberOfKeys, ...keysAndArgs),
      () => buffers.evalBuffer(this.lua, this.numberOfKeys, ...keysAndArgs),
    );
  }

  private async withFallback(evalsha: () => Promise<unknown>, evalSource: () => Promise<unknown>): Promise<unknown> {
    try {
      return await evalsha();
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return evalSource();
    }
  }
}
