/**
 * What the Redis failover tests (Sentinel, Cluster) share: SDK clients on
 * three gateway nodes with a backend that keeps publishing through them
 * (retrying each message with its idempotency key until acknowledged), a
 * watch on the nodes' readiness, a probe that records what a publish without
 * retries is answered during the failover, and the check that every
 * acknowledged message reached every client exactly once, unless the client
 * was told it could not recover.
 */

import type pg from "pg";
import { expect } from "vitest";
import WebSocket from "ws";
import type { RoundStarted } from "../../../shared/src/race-events.js";
import { connect } from "../../../shared/src/client/index.js";
import { IdempotentPublisher } from "../../../loadtest/lib/idempotent-publisher.js";
import { DrillClient } from "./drill.js";
import { startGatewayNode, TEST_PUBLISH_KEY, type GatewayNode } from "./gateway-node.js";
import { metricValue } from "./metrics.js";
import { token } from "./tokens.js";
import { connect as connectTestClient, type TestClient } from "./ws-client.js";

/**
 * The three nodes of a failover test on `redisEnv` (Sentinel or Cluster): a
 * fast round clock on Postgres (so rounds turn over during the failover), and
 * each publish waits for one replica.
 */
export function startFailoverNodes(prefix: string, redisEnv: Readonly<Record<string, string>>, postgresUrl: string, schema: string): Promise<GatewayNode[]> {
  return Promise.all(
    ["node-1", "node-2", "node-3"].map((name) =>
      startGatewayNode({
        name,
        redisPrefix: prefix,
        env: {
          ...redisEnv,
          REDIS_WAIT_REPLICAS: "1",
          LOG_LEVEL: "warn",
          CLOCK_ENABLED: "true",
          DATABASE_URL: postgresUrl,
          PG_SCHEMA: schema,
          ROUND_WAIT_MS: "1200",
          ROUND_RACE_MS: "800",
          ROUND_FINISH_MS: "400",
          TIMER_UPDATE_INTERVAL_MS: "100",
          RACE_SYNC_INTERVAL_MS: "200",
          CLOCK_LEASE_TTL_MS: "1000",
          RACE_RUNNERS: "6",
        },
      }),
    ),
  );
}

/**
 * Clients spread over the nodes round robin, each on the drill's public
 * channel, its own personal one and `extraChannels(i)`.
 */
export async function failoverClients(nodes: readonly GatewayNode[], label: string, count: number, extraChannels: (i: number) => string[] = () => []): Promise<DrillClient[]> {
  const clients = Array.from({ length: count }, (_, i) => {
    const sub = `${label}-${i}`;
    const node = nodes[i % nodes.length] as GatewayNode;
    return new DrillClient(sub, connect(node.wsUrl, { token: token({ sub }) }, { WebSocket, initialDelayMs: 200, maxDelayMs: 1000, drainJitterMs: 300 }), extraChannels(i));
  });
  await Promise.all(clients.map((c) => c.ready));
  return clients;
}

/** A backend publishing through every node, and which message each acknowledged position holds. */
export interface FailoverPublisher {
  readonly publisher: IdempotentPublisher;
  /** Per channel, the acknowledged messages in publish order, as `offset:seq` in the channel's last epoch. */
  acknowledged(channel: string): { readonly epoch: string; readonly messages: string[] } | null;
}

/** Publishes to `channelOf(seq)` through every node, each message retried with its key until acknowledged. */
export function failoverPublisher(nodes: readonly GatewayNode[], channelOf: (seq: number) => string): FailoverPublisher {
  const bySeq = new Map<string, Array<{ readonly seq: number; readonly offset: number; readonly epoch: string }>>();
  const publisher = new IdempotentPublisher({
    nodes: () => nodes.map((node) => node.httpUrl),
    publishKey: TEST_PUBLISH_KEY,
    channelOf,
    intervalMs: 5,
    maxMessages: 5000,
    maxDurationMs: 60_000,
    onAck: (seq, channel, acked) => bySeq.set(channel, [...(bySeq.get(channel) ?? []), { seq, offset: acked.offset, epoch: acked.epoch }]),
  });
  return {
    publisher,
    acknowledged: (channel) => {
      const list = bySeq.get(channel) ?? [];
      const epoch = list.at(-1)?.epoch;
      if (epoch === undefined) return null;
      return { epoch, messages: list.filter((a) => a.epoch === epoch).map((a) => `${a.offset}:${a.seq}`) };
    },
  };
}

/**
 * Per client and channel, what is wrong: an acknowledged message missing,
 * received twice, or another message under its offset — unless the client
 * was told `recovered: false` for that channel (then it knows it lost some,
 * and offsets that Redis lost in a failover may name other messages now).
 */
export function deliveryProblems(clients: readonly DrillClient[], backend: FailoverPublisher): string[] {
  const problems: string[] = [];
  for (const client of clients) {
    for (const channel of client.channels()) {
      const acked = backend.acknowledged(channel);
      if (acked === null) continue;
      if (client.resumed.some((r) => r.channel === channel && !r.recovered)) continue;
      const got = client.messages(channel, acked.epoch);
      if (JSON.stringify(got) !== JSON.stringify(acked.messages)) {
        const missing = acked.messages.filter((m) => !got.includes(m));
        const unexpected = got.filter((m) => !acked.messages.includes(m));
        problems.push(`${client.sub} ${channel}: ${got.length} received for ${acked.messages.length} acknowledged; missing ${missing.slice(0, 5).join(",")}; unexpected ${unexpected.slice(0, 5).join(",")}; trail ${client.trail.slice(-4).join(" | ")}`);
      }
    }
  }
  return problems;
}

/** Every acknowledged message held by every client (or the client told otherwise), within `timeoutMs`; else what is still wrong. */
export async function settled(clients: readonly DrillClient[], backend: FailoverPublisher, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let problems = deliveryProblems(clients, backend);
  while (problems.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    problems = deliveryProblems(clients, backend);
  }
  return problems;
}

interface Sample {
  readonly at: number;
  readonly ready: boolean;
}

/** Polls every node's /readyz every 50 ms and keeps what it saw, from start() to stop(). */
export class ReadinessWatch {
  private readonly samples = new Map<string, Sample[]>();
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> = Promise.resolve();

  constructor(private readonly nodes: readonly GatewayNode[]) {}

  start(): void {
    const poll = async (): Promise<void> => {
      await Promise.all(
        this.nodes.map(async (node) => {
          const ready = await fetch(`${node.httpUrl}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
            (res) => res.status === 200,
            () => false,
          );
          const list = this.samples.get(node.name) ?? [];
          list.push({ at: Date.now(), ready });
          this.samples.set(node.name, list);
        }),
      );
    };
    this.timer = setInterval(() => {
      this.polling = this.polling.then(poll);
    }, 50);
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    await this.polling;
  }

  /** `node`'s readiness changes, as "+ms ready|not ready" from `since`: for failure messages. */
  transitions(node: string, since: number): string[] {
    const changes: string[] = [];
    let last: boolean | null = null;
    for (const sample of this.samples.get(node) ?? []) {
      if (sample.ready === last) continue;
      last = sample.ready;
      changes.push(`${sample.at - since} ${sample.ready ? "ready" : "not ready"}`);
    }
    return changes;
  }

  /** Whether `node` answered not-ready at some point after `since`. */
  wasNotReady(node: string, since: number): boolean {
    return (this.samples.get(node) ?? []).some((s) => s.at >= since && !s.ready);
  }

  /** When every node had answered ready again after its last not-ready sample; null while one is still not ready. */
  readyAgainAt(): number | null {
    let latest = 0;
    for (const node of this.nodes) {
      const list = this.samples.get(node.name) ?? [];
      const last = list.at(-1);
      if (last === undefined || !last.ready) return null;
      let firstReady = list.length - 1;
      while (firstReady > 0 && (list[firstReady - 1] as Sample).ready) firstReady--;
      latest = Math.max(latest, (list[firstReady] as Sample).at);
    }
    return latest;
  }
}

export interface ProbeResult {
  readonly at: number;
  readonly status: number;
  /** The acknowledged position, for a 200. */
  readonly offset?: number;
  readonly epoch?: string;
  /** The refusal's message, for anything but a 200. */
  readonly error?: string;
}

/**
 * One publish without retries every `intervalMs` to `channel` on `node`,
 * recording the answer: what a backend that does not retry sees.
 */
export class PublishProbe {
  readonly results: ProbeResult[] = [];
  private stopped = false;
  private running: Promise<void> | null = null;

  constructor(
    private readonly node: GatewayNode,
    private readonly channel: string,
    private readonly intervalMs = 50,
    private readonly maxProbes = 1000,
  ) {}

  start(): void {
    this.running = (async () => {
      for (let seq = 0; !this.stopped && seq < this.maxProbes; seq++) {
        const at = Date.now();
        type Answer = { status: number; body: { offset?: number; epoch?: string; error?: { message?: string } } };
        const status: Answer = await fetch(`${this.node.httpUrl}/v1/publish`, {
          method: "POST",
          headers: { authorization: `Bearer ${TEST_PUBLISH_KEY}`, "content-type": "application/json" },
          body: JSON.stringify({ channel: this.channel, event: "probe", data: { seq } }),
          signal: AbortSignal.timeout(3000),
        }).then(
          async (res) => ({ status: res.status, body: (await res.json().catch(() => ({}))) as { offset?: number; epoch?: string } }),
          (): Answer => ({ status: 0, body: {} }),
        );
        const { offset, epoch, error } = status.body;
        this.results.push({ at, status: status.status, ...(offset === undefined ? {} : { offset, epoch }), ...(error?.message === undefined ? {} : { error: error.message }) });
        await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}

/** The history of `channel` as one node reads it: offsets and epoch. */
export async function historyOffsets(node: GatewayNode, channel: string): Promise<{ epoch: string; offsets: number[] }> {
  const res = await fetch(`${node.httpUrl}/v1/history?channel=${encodeURIComponent(channel)}&since=0&limit=1000`, { headers: { authorization: `Bearer ${TEST_PUBLISH_KEY}` } });
  if (res.status !== 200) throw new Error(`history of ${channel}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { epoch: string; messages: Array<{ offset: number }> };
  return { epoch: body.epoch, offsets: body.messages.map((m) => m.offset) };
}

export interface FailoverOutcome {
  readonly nodes: readonly GatewayNode[];
  readonly readiness: ReadinessWatch;
  readonly killedAt: number;
  readonly readyAgainAt: number;
  readonly probe: PublishProbe;
  readonly probeChannel: string;
  readonly backend: FailoverPublisher;
  readonly clients: readonly DrillClient[];
}

/**
 * What every Redis failover must show once it is over (watch, probe and
 * publisher stopped): every node said not ready and was ready again within
 * 15 s; a publish without retries was answered 503 meanwhile, never anything
 * but 200 or 503, and each 200 is in history (an acknowledged publish
 * survived); the publisher had to retry; every acknowledged message reached
 * every client exactly once, or the client was told it could not recover.
 */
export async function expectFailoverHeld(outcome: FailoverOutcome): Promise<void> {
  const { nodes, readiness, killedAt, probe, backend } = outcome;
  for (const node of nodes) expect(readiness.wasNotReady(node.name, killedAt), node.name).toBe(true);
  expect(outcome.readyAgainAt - killedAt, JSON.stringify(nodes.map((node) => readiness.transitions(node.name, killedAt)))).toBeLessThan(15_000);
  expect(probe.results.some((r) => r.status === 503)).toBe(true);
  expect(probe.results.filter((r) => r.status !== 200 && r.status !== 503)).toEqual([]);
  const acknowledged = probe.results.filter((r) => r.status === 200);
  expect(acknowledged.length).toBeGreaterThan(0);
  const history = await historyOffsets(nodes[1] as GatewayNode, outcome.probeChannel);
  for (const ack of acknowledged) {
    expect(ack.epoch).toBe(history.epoch);
    expect(history.offsets).toContain(ack.offset);
  }
  expect(backend.publisher.retries).toBeGreaterThan(0);
  expect(await settled(outcome.clients, backend, 20_000)).toEqual([]);
}

/** A game screen on `node`, subscribed to `race`; kept in `opened` for the caller to close. */
export async function raceScreen(node: GatewayNode, opened: TestClient[]): Promise<TestClient> {
  const screen = await connectTestClient(node.wsUrl, { token: token({ sub: `screen-${node.name}` }) });
  opened.push(screen);
  await screen.subscribe("race");
  return screen;
}

/** The rounds a race screen saw start, in order. */
export function roundsStarted(screen: TestClient): number[] {
  return screen
    .messages("race")
    .filter((m) => m.event === "round_started")
    .map((m) => (m.data as unknown as RoundStarted).roundId);
}

/**
 * The round clock went on after a failover: two more rounds start on every
 * node's screen, Postgres holds each round once with no hole in the
 * numbering, and exactly one node is the authority.
 */
export async function expectRoundClockWentOn(screens: readonly TestClient[], db: pg.Pool, schema: string, nodes: readonly GatewayNode[]): Promise<void> {
  const lastBefore = Math.max(...screens.flatMap((s) => roundsStarted(s).filter((id) => id > 0)));
  await Promise.all(screens.map((s) => s.waitForMessage((m) => m.event === "round_started" && (m.data as unknown as RoundStarted).roundId >= lastBefore + 2, 15_000)));
  const { rows } = await db.query<{ id: string }>(`SELECT id FROM ${schema}.rounds ORDER BY id`);
  const ids = rows.map((row) => Number(row.id));
  expect(ids).toEqual(ids.map((_, i) => (ids[0] as number) + i));
  const leaders = await Promise.all(nodes.map((node) => metricValue(node.httpUrl, "gateway_clock_leader")));
  expect(leaders.reduce((a, b) => a + b, 0)).toBe(1);
}
