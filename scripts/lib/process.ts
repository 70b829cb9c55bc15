import { spawn, type ChildProcess } from "node:child_process";

/** How much combined stdout+stderr is retained per process for error messages and tests. */
const OUTPUT_LIMIT = 200 * 1024;
const PROBE_INTERVAL_MS = 50;

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be spawned at all (e.g. ENOENT). */
  error?: Error;
}

export interface StartProcessOptions {
  name: string;
  command: string;
  args?: readonly string[];
  /** Merged over process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Ready once a stdout/stderr line matches. */
  readyLine?: RegExp;
  /** Ready once this returns true; polled every 50 ms. A throw counts as "not ready yet". */
  readyProbe?: () => Promise<boolean>;
  /** Upper bound for becoming ready; default 15 s. */
  timeoutMs?: number;
  /** Echo output to our own stdout/stderr with a `[name]` prefix (used by npm start). */
  echo?: boolean;
  /** The signal that stops this process cleanly; stop()'s default. Default SIGTERM. */
  stopSignal?: NodeJS.Signals;
}

export interface WaitForLineOptions {
  /** Also match lines already received (still held in the bounded output buffer). */
  includeSeen?: boolean;
}

export interface ManagedProcess {
  readonly child: ChildProcess;
  readonly name: string;
  readonly pid: number;
  /** The signal that stops it cleanly (see StartProcessOptions.stopSignal). */
  readonly stopSignal: NodeJS.Signals;
  /** Resolves once, when the process has exited. Never rejects. */
  readonly exited: Promise<ExitInfo>;
  /** Sends `signal` (default: stopSignal) to the process group, escalates to SIGKILL after `timeoutMs`; resolves with the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** SIGKILL to the whole process group; resolves on exit. */
  kill9(): Promise<ExitInfo>;
  /** Captured stdout+stderr, the last ~200 KB. */
  output(): string;
  /** Resolves with the first matching line received after the call (see options). */
  waitForLine(re: RegExp, timeoutMs: number, options?: WaitForLineOptions): Promise<string>;
  /** True until the exit event. */
  isRunning(): boolean;
}

/** Live children in start order; stopAll walks it backwards so dependents stop before dependencies. */
const registry = new Set<ManagedProcess>();

export function liveProcesses(): ManagedProcess[] {
  return [...registry];
}

type SpawnListener = (proc: ManagedProcess) => void;
const spawnListeners = new Set<SpawnListener>();

/**
 * Calls `listener` for every child spawned from now on, synchronously right after the spawn
 * and before anything awaits its readiness: npm start writes each one into its start record
 * at once, so a crash at any later moment leaves a record of it. Returns the unsubscribe.
 */
export function onProcessSpawned(listener: SpawnListener): () => void {
  spawnListeners.add(listener);
  return () => spawnListeners.delete(listener);
}

/**
 * Stops every live child, last-started first, each bounded by `timeoutMs` before SIGKILL.
 * Sequential on purpose: gateways (started last) must be gone before Redis/Postgres go away.
 */
export async function stopAll(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 5000): Promise<void> {
  for (const proc of [...registry].reverse()) {
    await proc.stop(signal, timeoutMs);
  }
}

// Last line of defence: if our process exits without having stopped its children (uncaught
// exception, process.exit in a test runner), don't leave servers holding ports. Only
// synchronous work is possible here, so this is a plain SIGKILL to each group.
process.on("exit", () => {
  for (const proc of registry) signalGroup(proc.child, "SIGKILL");
});

/**
 * Children run in their own process group (detached) so that a signal reaches everything
 * they fork: runuser's postgres, the postmaster's backends, nginx's workers. It also keeps a
 * terminal Ctrl-C from hitting them directly, so the parent decides the shutdown order.
 */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): boolean {
  if (child.pid === undefined) return false;
  try {
    process.kill(-child.pid, signal);
    return true;
  } catch (err) {
    // ESRCH: the group is already gone, which is what the caller wanted anyway.
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}

function timeout(ms: number): { promise: Promise<"timeout">; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

type LineListener = (line: string) => void;

export function startProcess(options: StartProcessOptions): Promise<ManagedProcess> {
  const { name, command, args = [], env, cwd, readyLine, readyProbe, echo = false, stopSignal = "SIGTERM" } = options;
  const timeoutMs = options.timeoutMs ?? 15_000;

  const child = spawn(command, [...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });

  let buffer = "";
  const lineListeners = new Set<LineListener>();
  let running = true;

  const appendOutput = (text: string): void => {
    buffer += text;
    // Trim lazily (at 1.5x) so a chatty process does not cost a copy per chunk.
    if (buffer.length > OUTPUT_LIMIT * 1.5) buffer = buffer.slice(-OUTPUT_LIMIT);
  };

  const attach = (stream: NodeJS.ReadableStream | null, sink: NodeJS.WriteStream): void => {
    if (!stream) return;
    stream.setEncoding("utf8");
    let partial = "";
    const emitLine = (line: string): void => {
      if (echo) sink.write(`[${name}] ${line}\n`);
      for (const listener of [...lineListeners]) listener(line);
    };
    stream.on("data", (chunk: string) => {
      appendOutput(chunk);
      const lines = (partial + chunk).split(/\r?\n/);
      partial = lines.pop() ?? "";
      for (const line of lines) emitLine(line);
    });
    stream.on("end", () => {
      if (partial) emitLine(partial);
      partial = "";
    });
  };
  attach(child.stdout, process.stdout);
  attach(child.stderr, process.stderr);

  // 'exit' rather than 'close': grandchildren (postgres backends) may keep the pipes open
  // after the process we started is gone, and 'close' would wait for them.
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once("exit", (code, signal) => {
      running = false;
      resolve({ code, signal });
    });
    child.once("error", (err) => {
      // 'error' without 'exit' means the spawn itself failed; after a successful spawn
      // 'error' only reports a failed kill(), which the exit handler does not need.
      if (child.pid === undefined) {
        running = false;
        resolve({ code: null, signal: null, error: err });
      }
    });
  });

  const describeExit = (info: ExitInfo): string =>
    info.error
      ? `could not start: ${info.error.message}`
      : `exited with ${info.signal ? `signal ${info.signal}` : `code ${String(info.code)}`}`;

  /** Output may still be in flight when 'exit' fires; give the pipes a moment to drain. */
  const settledOutput = async (): Promise<string> => {
    if (child.stdout?.readableEnded !== false && child.stderr?.readableEnded !== false) return buffer;
    const t = timeout(300);
    await Promise.race([new Promise((r) => child.once("close", r)), t.promise]);
    t.cancel();
    return buffer;
  };

  const waitForLine = (re: RegExp, waitMs: number, opts: WaitForLineOptions = {}): Promise<string> => {
    if (opts.includeSeen) {
      const seen = buffer.split(/\r?\n/).find((line) => re.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
    }
    return new Promise<string>((resolve, reject) => {
      const cleanup = (): void => {
        lineListeners.delete(listener);
        clearTimeout(timer);
      };
      const listener: LineListener = (line) => {
        if (!re.test(line)) return;
        cleanup();
        resolve(line);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`[${name}] no line matching ${re} within ${waitMs} ms. Output:\n${buffer}`));
      }, waitMs);
      lineListeners.add(listener);
      void exited.then(async (info) => {
        if (!lineListeners.has(listener)) return;
        const out = await settledOutput();
        // The final lines can arrive after 'exit'; only fail if they did not match either.
        if (!lineListeners.has(listener)) return;
        cleanup();
        reject(new Error(`[${name}] ${describeExit(info)} before a line matching ${re}. Output:\n${out}`));
      });
    });
  };

  const kill9 = async (): Promise<ExitInfo> => {
    if (running) signalGroup(child, "SIGKILL");
    return exited;
  };

  const stop = async (signal: NodeJS.Signals = stopSignal, stopTimeoutMs = 10_000): Promise<number | null> => {
    if (running) {
      signalGroup(child, signal);
      const t = timeout(stopTimeoutMs);
      const result = await Promise.race([exited, t.promise]);
      t.cancel();
      if (result === "timeout") {
        if (echo) process.stderr.write(`[${name}] did not exit ${stopTimeoutMs} ms after ${signal}; sending SIGKILL\n`);
        signalGroup(child, "SIGKILL");
      }
    }
    // The leader may be gone while group members linger (e.g. runuser exits, postgres
    // still flushing); make sure nothing of this group outlives stop().
    signalGroup(child, "SIGKILL");
    return (await exited).code;
  };

  const managed: ManagedProcess = {
    child,
    name,
    pid: child.pid ?? -1,
    stopSignal,
    exited,
    stop,
    kill9,
    output: () => buffer.slice(-OUTPUT_LIMIT),
    waitForLine,
    isRunning: () => running,
  };

  if (child.pid !== undefined) {
    registry.add(managed);
    for (const listener of [...spawnListeners]) listener(managed);
  }
  void exited.then(() => registry.delete(managed));

  return new Promise<ManagedProcess>((resolve, reject) => {
    let settled = false;
    const deadline = Date.now() + timeoutMs;

    const readyListener: LineListener = (line) => {
      if (readyLine?.test(line)) succeed();
    };
    const finish = (): void => {
      settled = true;
      clearTimeout(overall);
      lineListeners.delete(readyListener);
    };
    const succeed = (): void => {
      if (settled) return;
      finish();
      resolve(managed);
    };
    const fail = async (reason: string): Promise<void> => {
      if (settled) return;
      finish();
      // A process that never became ready is useless to the caller and would leak a port.
      await kill9();
      const out = await settledOutput();
      reject(new Error(`[${name}] ${reason}. Command: ${command} ${args.join(" ")}\nOutput:\n${out}`));
    };

    const overall = setTimeout(() => void fail(`not ready within ${timeoutMs} ms`), timeoutMs);

    void exited.then(async (info) => {
      // A process may print its ready line and exit at once; let those last lines through first.
      await settledOutput();
      void fail(describeExit(info));
    });

    if (readyLine) lineListeners.add(readyListener);

    if (readyProbe) {
      const poll = async (): Promise<void> => {
        while (!settled && running && Date.now() < deadline) {
          let ok: boolean;
          try {
            ok = await readyProbe();
          } catch {
            // A probe that throws (connection refused, etc.) only means "not ready yet".
            ok = false;
          }
          if (ok) return succeed();
          await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
        }
      };
      child.once("spawn", () => void poll());
    }

    if (!readyLine && !readyProbe) child.once("spawn", succeed);
  });
}
