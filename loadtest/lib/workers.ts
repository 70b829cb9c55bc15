/**
 * The benchmark controller's side of its load generator processes
 * (loadtest/worker.ts): fork one, ask it something over IPC and wait for the
 * answer, close it. Every live one is in `liveWorkers`, so a controller that
 * is interrupted can kill them all.
 */

import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import { repoRoot } from "../../scripts/lib/paths.js";
import type { ControllerMessage, WorkerMessage } from "./worker-protocol.js";

export class WorkerHandle {
  private readonly waiters = new Map<WorkerMessage["type"], Array<(message: WorkerMessage) => void>>();
  progress = 0;

  constructor(readonly child: ChildProcess) {
    child.on("message", (message: WorkerMessage) => {
      if (message.type === "progress") this.progress = message.established;
      const queue = this.waiters.get(message.type);
      const next = queue?.shift();
      next?.(message);
    });
  }

  /** Sends `request` and resolves with the first `reply` message, or rejects after `timeoutMs` or on exit. */
  ask<T extends WorkerMessage["type"]>(request: ControllerMessage, reply: T, timeoutMs: number): Promise<Extract<WorkerMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => {
        clearTimeout(timer);
        reject(new Error(`generator worker exited (${String(code)}) while waiting for ${reply}`));
      };
      const timer = setTimeout(() => {
        this.child.off("exit", onExit);
        reject(new Error(`generator worker: no ${reply} within ${timeoutMs} ms`));
      }, timeoutMs);
      const queue = this.waiters.get(reply) ?? [];
      queue.push((message) => {
        clearTimeout(timer);
        this.child.off("exit", onExit);
        resolve(message as Extract<WorkerMessage, { type: T }>);
      });
      this.waiters.set(reply, queue);
      this.child.once("exit", onExit);
      this.child.send(request);
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await this.ask({ type: "close" }, "closed", 10_000).catch(() => this.child.kill("SIGKILL"));
    if (this.child.exitCode === null) await new Promise((resolve) => this.child.once("exit", resolve));
  }
}

export const liveWorkers = new Set<ChildProcess>();

export function forkWorker(): WorkerHandle {
  const child = fork(path.join(repoRoot(), "dist/loadtest/worker.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  liveWorkers.add(child);
  child.once("exit", () => liveWorkers.delete(child));
  return new WorkerHandle(child);
}
