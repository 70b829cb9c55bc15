/**
 * Starts one gateway node as its own process (`node dist/gateway/src/main.js`,
 * as in production), on the port it is given, and resolves once /readyz
 * answers 200. The one launcher behind `npm start`, the test support, the
 * benchmarks and the histogram check.
 */

import path from "node:path";
import { repoRoot } from "./paths.js";
import { startProcess, type ManagedProcess } from "./process.js";

/** The compiled entry point; `npm run build` writes it. */
export function gatewayEntryPoint(): string {
  return path.join(repoRoot(), "dist", "gateway", "src", "main.js");
}

export interface GatewayProcessOptions {
  /** NODE_ID, and the process's name in output and errors. */
  readonly name: string;
  readonly port: number;
  /** Default 127.0.0.1: every launcher here serves loopback only. */
  readonly host?: string;
  /** Gateway variables (see gateway/src/config.ts), applied over NODE_ID, HOST and PORT. */
  readonly env?: NodeJS.ProcessEnv;
  /** Resolve on /readyz 200 (default), or as soon as the node logs that it listens (it may still wait for Redis). */
  readonly waitReady?: boolean;
  /** Upper bound for becoming ready; default 15 s. */
  readonly timeoutMs?: number;
  /** Options for node itself, before the entry point (e.g. `--inspect=127.0.0.1:0`). */
  readonly nodeArgs?: readonly string[];
  /** Echo the node's output with a `[name]` prefix. */
  readonly echo?: boolean;
}

/** Ready, and this node: another process answering on the port (a port handed out twice) is not. */
async function isReadyAs(readyz: string, nodeId: string): Promise<boolean> {
  const res = await fetch(readyz, { signal: AbortSignal.timeout(1000) });
  const body = (await res.json()) as { node?: unknown };
  return res.status === 200 && body.node === nodeId;
}

export function startGatewayProcess(options: GatewayProcessOptions): Promise<ManagedProcess> {
  const host = options.host ?? "127.0.0.1";
  const readyz = `http://${host}:${options.port}/readyz`;
  const nodeId = options.env?.["NODE_ID"] ?? options.name;
  return startProcess({
    name: options.name,
    command: process.execPath,
    args: [...(options.nodeArgs ?? []), gatewayEntryPoint()],
    cwd: repoRoot(),
    env: { NODE_ID: nodeId, HOST: host, PORT: String(options.port), ...options.env },
    ...((options.waitReady ?? true)
      ? { readyProbe: async () => isReadyAs(readyz, nodeId) }
      : { readyLine: /"msg":"listening"/ }),
    timeoutMs: options.timeoutMs ?? 15_000,
    ...(options.echo === undefined ? {} : { echo: options.echo }),
  });
}
