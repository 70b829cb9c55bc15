/** A client wired to the fakes, recording every event it emits. */

import { afterEach } from "vitest";
import { GatewayClient } from "../../src/client/client.js";
import type { ClientEvents, ClientOptions, TokenSource } from "../../src/client/types.js";
import { fakeServer, flush, ManualTimers, type FakeServer } from "./fakes.js";

export interface Harness {
  readonly client: GatewayClient;
  readonly timers: ManualTimers;
  readonly server: FakeServer;
  readonly events: Array<{ readonly name: keyof ClientEvents; readonly value: unknown }>;
  /** The `value`s of one event kind, in order. */
  of<K extends keyof ClientEvents>(name: K): Array<ClientEvents[K]>;
}

const NAMES: ReadonlyArray<keyof ClientEvents> = ["state", "connecting", "connected", "disconnected", "reconnecting", "resumed", "refreshed", "error"];

export async function harness(options: ClientOptions = {}, auth: TokenSource = { token: "t0" }): Promise<Harness> {
  const timers = new ManualTimers();
  const server = fakeServer(timers);
  const client = new GatewayClient("ws://gw.test/ws", auth, { WebSocket: server.Socket, timers, random: () => 0.5, ...options });
  const events: Array<{ name: keyof ClientEvents; value: unknown }> = [];
  for (const name of NAMES) client.on(name, (value) => events.push({ name, value }));
  await flush();
  return {
    client,
    timers,
    server,
    events,
    of: <K extends keyof ClientEvents>(name: K) => events.filter((e) => e.name === name).map((e) => e.value as ClientEvents[K]),
  };
}

/** A harness starter for one test file: every client it started is closed after each test. */
export function closedAfterEach(): (...args: Parameters<typeof harness>) => Promise<Harness> {
  let open: Harness[] = [];
  afterEach(async () => {
    await Promise.all(open.map((h) => h.client.close()));
    open = [];
  });
  return async (...args) => {
    const h = await harness(...args);
    open.push(h);
    return h;
  };
}
