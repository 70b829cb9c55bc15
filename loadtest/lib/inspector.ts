/**
 * A minimal client of the V8 inspector protocol, for processes started with
 * `--inspect=127.0.0.1:0`: calls with replies, and events. The benchmarks
 * use it to profile the CPU, collect garbage before a memory reading, and
 * take heap snapshots, from outside, with the measured server unmodified.
 */

import WebSocket from "ws";

const CALL_TIMEOUT_MS = 120_000;

export class InspectorSession {
  private nextId = 1;
  private readonly replies = new Map<number, { resolve: (result: Record<string, unknown>) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  private readonly listeners = new Map<string, Set<(params: Record<string, unknown>) => void>>();

  private constructor(private readonly ws: WebSocket) {
    ws.on("message", (data: WebSocket.RawData) => this.onMessage((data as Buffer).toString("utf8")));
    ws.on("close", () => {
      for (const [id, pending] of this.replies) {
        clearTimeout(pending.timer);
        pending.reject(new Error(`inspector closed before reply ${id}`));
      }
      this.replies.clear();
    });
  }

  /** Connects to the `ws://…` URL the process printed ("Debugger listening on …"). */
  static async connect(url: string): Promise<InspectorSession> {
    // Heap snapshots arrive as many large chunks: no payload limit.
    const ws = new WebSocket(url, { maxPayload: 0 });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return new InspectorSession(ws);
  }

  call(method: string, params: object = {}, timeoutMs = CALL_TIMEOUT_MS): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.replies.delete(id);
        reject(new Error(`inspector ${method} timed out`));
      }, timeoutMs);
      this.replies.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Calls `listener` for every event named `method` until the returned function is called. */
  on(method: string, listener: (params: Record<string, unknown>) => void): () => void {
    let set = this.listeners.get(method);
    if (set === undefined) this.listeners.set(method, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** A full garbage collection in the inspected process (HeapProfiler.collectGarbage). */
  async collectGarbage(): Promise<void> {
    await this.call("HeapProfiler.collectGarbage");
  }

  /** A heap snapshot as the .heapsnapshot JSON text, assembled from its chunks. */
  async heapSnapshot(): Promise<string> {
    const chunks: string[] = [];
    const off = this.on("HeapProfiler.addHeapSnapshotChunk", (params) => chunks.push(String(params["chunk"])));
    try {
      await this.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false, captureNumericValue: false });
    } finally {
      off();
    }
    return chunks.join("");
  }

  close(): void {
    this.ws.close();
  }

  private onMessage(text: string): void {
    const message = JSON.parse(text) as { id?: number; method?: string; params?: Record<string, unknown>; result?: Record<string, unknown>; error?: unknown };
    if (message.id !== undefined) {
      const pending = this.replies.get(message.id);
      if (pending === undefined) return;
      this.replies.delete(message.id);
      clearTimeout(pending.timer);
      if (message.error !== undefined) pending.reject(new Error(`inspector: ${JSON.stringify(message.error)}`));
      else pending.resolve(message.result ?? {});
      return;
    }
    if (message.method !== undefined) for (const listener of this.listeners.get(message.method) ?? []) listener(message.params ?? {});
  }
}
