/**
 * The controller's side of the load processes it forks (the bench generator
 * loadtest/worker.ts, the storm and the soak workers): fork one, ask it
 * something over IPC and wait for the answer. Every live one is in
 * `liveWorkers`, so a controller that is interrupted can kill them all.
 */

import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import { repoRoot } from "../../scripts/lib/paths.js";
import type { ControllerMessage, WorkerMessage } from "./worker-protocol.js";

interface Typed {
  readonly type: string;
}

/**
 * The next message of `type` from `child`. Rejects after `timeoutMs`, or when
 * the child exits first: a load run never waits on a process unbounded.
 */
export function nextMessage<M extends Typed, T extends M["type"]>(child: ChildProcess, type: T, timeoutMs: number, label: string): Promise<Extract<M, { type: T }>> {
  return new Promise((resolve, reject) => {
    const settle = (): void => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    const onMessage = (message: M): void => {
      if (message.type !== type) return;
      settle();
      resolve(message as Extract<M, { type: T }>);
    };
    const onExit = (code: number | null): void => {
      settle();
      reject(new Error(`${label} exited (${String(code)}) while waiting for ${type}`));
    };
    const timer = setTimeout(() => {
      settle();
      reject(new Error(`${label}: no ${type} within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

/** A forked process spoken to by typed request and reply messages. */
export class IpcWorker<Request extends Typed, Reply extends Typed> {
  constructor(
    readonly child: ChildProcess,
    private readonly label: string,
  ) {}

  /** Sends `request` and resolves with the first `reply` message after it, or rejects after `timeoutMs` or on exit. */
  ask<T extends Reply["type"]>(request: Request, reply: T, timeoutMs: number): Promise<Extract<Reply, { type: T }>> {
    const answer = nextMessage<Reply, T>(this.child, reply, timeoutMs, this.label);
    this.child.send(request);
    return answer;
  }
}

/** The bench's generator process: also counts its sockets as they subscribe. */
export class WorkerHandle extends IpcWorker<ControllerMessage, WorkerMessage> {
  progress = 0;

  constructor(child: ChildProcess) {
    super(child, "generator worker");
    child.on("message", (message: WorkerMessage) => {
      if (message.type === "progress") this.progress = message.established;
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await this.ask({ type: "close" }, "closed", 10_000).catch(() => this.child.kill("SIGKILL"));
    if (this.child.exitCode === null) await new Promise((resolve) => this.child.once("exit", resolve));
  }
}

export const liveWorkers = new Set<ChildProcess>();

/** Forks `dist/loadtest/<script>` with an IPC channel, tracked in `liveWorkers` until it exits. */
export function forkLoadProcess(script: string): ChildProcess {
  const child = fork(path.join(repoRoot(), "dist/loadtest", script), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  liveWorkers.add(child);
  child.once("exit", () => liveWorkers.delete(child));
  return child;
}

export function forkWorker(): WorkerHandle {
  return new WorkerHandle(forkLoadProcess("worker.js"));
}
