/**
 * Every gateway rate limit against real nodes, Redis and Postgres: the
 * excess is refused with its documented code (and counted) while another
 * user, or another address, is served. Per-connection and per-user limits
 * run on both transports through one client interface.
 */

import type pg from "pg";
import { io, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { CloseCodes, ErrorCodes } from "../../shared/src/codes.js";
import type { ErrorBody } from "../../shared/src/protocol.js";
import { currentRound, newKey, oddsOf, outcomeOf, placeBet } from "./support/bets.js";
import { testPool } from "./support/db.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { TRANSPORT_ADAPTERS, type ContractClient, type TransportAdapter, type WireAnswer } from "./support/transport-clients.js";
import { connect, publish, tryConnect, type ConnectOutcome, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
const nodes: GatewayNode[] = [];
const closers: Array<() => Promise<unknown>> = [];

async function node(name: string, env: Record<string, string>, prefix = uniquePrefix(name)): Promise<GatewayNode> {
  const started = await startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env });
  nodes.push(started);
  return started;
}

async function open(adapter: TransportAdapter, target: GatewayNode, sub: string): Promise<ContractClient> {
  const connected = await adapter.tryConnect(target, token({ sub }));
  if (!connected.ok) throw new Error(`${adapter.name} connect for ${sub} refused: ${connected.code}`);
  closers.push(() => connected.client.close());
  return connected.client;
}

/** The error code of each settled answer, "ok", or "none" when no answer came. */
function codes(settled: ReadonlyArray<PromiseSettledResult<WireAnswer>>): string[] {
  return settled.map((result) => (result.status === "rejected" ? "none" : result.value.ok ? "ok" : result.value.error.code));
}

function count(values: readonly string[], value: string): number {
  return values.filter((v) => v === value).length;
}

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await Promise.allSettled(closers.map((close) => close()));
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
});

describe("frames per connection", () => {
  let rates: GatewayNode;
  beforeAll(async () => {
    rates = await node("frames", { CLIENT_FRAMES_PER_S: "5", CLIENT_FRAME_BURST: "10" });
  });

  for (const adapter of TRANSPORT_ADAPTERS) {
    it(`${adapter.name}: refuses frames past the burst with rate_limited, then closes with 4029, while another user is served`, async () => {
      const abuser = await open(adapter, rates, `${adapter.name}-flood`);
      const bystander = await open(adapter, rates, `${adapter.name}-calm`);
      const before = await metricValue(rates.httpUrl, "gateway_rate_limited_total", { limit: "frames" });

      // All at once: 10 within the burst, 10 refused, and the 21st ends the connection.
      const pending = Array.from({ length: 25 }, () => abuser.request("ping", {}, 1500));
      const closed = await abuser.closed;
      const answers = codes(await Promise.allSettled(pending));
      expect(closed).toEqual({ code: CloseCodes.rateLimited.code, reason: CloseCodes.rateLimited.reason });
      expect(answers.slice(0, 10)).toEqual(Array.from({ length: 10 }, () => "ok"));
      expect(answers.slice(10, 20)).toEqual(Array.from({ length: 10 }, () => ErrorCodes.rateLimited.code));
      expect(count(answers, "ok")).toBe(10);

      expect(await bystander.request("ping", {})).toMatchObject({ ok: true });
      expect(await bystander.request("subscribe", { channel: "forecasts:RL" })).toMatchObject({ ok: true });
      expect((await publish(rates.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts:RL", event: "tick", data: adapter.name })).status).toBe(200);
      await bystander.waitForMessage((m) => m.data === adapter.name);

      expect(await metricValue(rates.httpUrl, "gateway_rate_limited_total", { limit: "frames" })).toBeGreaterThanOrEqual(before + 11);
      await eventually(() => metricValue(rates.httpUrl, "gateway_disconnects_total", { transport: adapter.name, reason: "rate_limited" }), (n) => n >= 1);
    });
  }

  it("lets a connection that paused send again", async () => {
    const client = await open(TRANSPORT_ADAPTERS[0]!, rates, "pauser");
    const burst = codes(await Promise.allSettled(Array.from({ length: 12 }, () => client.request("ping", {}))));
    expect(count(burst, "ok")).toBe(10);
    expect(count(burst, ErrorCodes.rateLimited.code)).toBe(2);
    // Refused frames count too: 12 frames at 5/s take 2.4 s to pay off. A probe is a frame
    // as well, so probe slower than the rate, and the debt shrinks between probes.
    let answer: WireAnswer | null = null;
    for (let probe = 0; probe < 12 && answer?.ok !== true; probe++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      answer = await client.request("ping", {});
    }
    expect(answer).toMatchObject({ ok: true });
  });
});

describe("subscribe and unsubscribe churn per connection", () => {
  let churn: GatewayNode;
  beforeAll(async () => {
    churn = await node("churn", { SUBSCRIBES_PER_S: "2", SUBSCRIBE_BURST: "3" });
  });

  for (const adapter of TRANSPORT_ADAPTERS) {
    it(`${adapter.name}: refuses requests past the burst with subscribe_rate_limited, while another user subscribes`, async () => {
      const churner = await open(adapter, churn, `${adapter.name}-churner`);
      const steady = await open(adapter, churn, `${adapter.name}-steady`);
      for (const channel of ["forecasts:A", "forecasts:B", "forecasts:C"]) expect(await churner.request("subscribe", { channel })).toMatchObject({ ok: true });
      expect(await churner.request("subscribe", { channel: "forecasts:D" })).toMatchObject({ ok: false, error: { code: ErrorCodes.subscribeRateLimited.code } });
      expect(await churner.request("unsubscribe", { channel: "forecasts:A" })).toMatchObject({ ok: false, error: { code: ErrorCodes.subscribeRateLimited.code } });
      // Other requests are not churn.
      expect(await churner.request("ping", {})).toMatchObject({ ok: true });
      expect(await steady.request("subscribe", { channel: "forecasts:D" })).toMatchObject({ ok: true });
      // Still subscribed to A: the refused unsubscribe did nothing.
      expect((await publish(churn.httpUrl, TEST_PUBLISH_KEY, { channel: "forecasts:A", event: "tick", data: adapter.name })).status).toBe(200);
      await churner.waitForMessage((m) => m.channel === "forecasts:A" && m.data === adapter.name);
      // Two a second refill: the unsubscribe goes through within a second or so.
      await eventually(
        () => churner.request("unsubscribe", { channel: "forecasts:A" }),
        (answer) => answer.ok,
        3000,
      );
    });
  }

  it("counts the refusals", async () => {
    expect(await metricValue(churn.httpUrl, "gateway_rate_limited_total", { limit: "subscribes" })).toBeGreaterThanOrEqual(4);
    expect(await metricValue(churn.httpUrl, "gateway_subscribe_requests_total", { result: "subscribe_rate_limited" })).toBeGreaterThanOrEqual(2);
  });
});

describe("connections per user across the cluster", () => {
  let first: GatewayNode;
  let second: GatewayNode;
  beforeAll(async () => {
    const prefix = uniquePrefix("quota");
    const env = { MAX_CONNECTIONS_PER_USER: "3" };
    [first, second] = await Promise.all([node("quota-1", env, prefix), node("quota-2", env, prefix)]);
  });

  async function refusedCode(adapter: TransportAdapter, target: GatewayNode, sub: string): Promise<string> {
    const connected = await adapter.tryConnect(target, token({ sub }));
    if (connected.ok) {
      closers.push(() => connected.client.close());
      return "open";
    }
    return connected.code;
  }

  it("refuses the user's connections past the limit on any node and either transport, while another user connects", async () => {
    const [ws, sio] = TRANSPORT_ADAPTERS as [TransportAdapter, TransportAdapter];
    const held = [await open(ws, first, "hog"), await open(ws, first, "hog"), await open(sio, second, "hog")];
    const refused = await tryConnect(second.wsUrl, { token: token({ sub: "hog" }) });
    expect(refused).toMatchObject({ kind: "refused", status: 429 });
    expect((JSON.parse((refused as Extract<ConnectOutcome, { kind: "refused" }>).body) as { error: ErrorBody }).error.code).toBe(ErrorCodes.tooManyConnections.code);
    expect(await refusedCode(sio, first, "hog")).toBe(ErrorCodes.tooManyConnections.code);
    for (const adapter of [ws, sio]) for (const target of [first, second]) expect(await refusedCode(adapter, target, `bystander-${adapter.name}`)).toBe("open");

    // A closed connection gives its slot back.
    await held[0]!.close();
    await eventually(
      () => refusedCode(ws, second, "hog"),
      (code) => code === "open",
      5000,
    );
    expect(await refusedCode(sio, second, "hog")).toBe(ErrorCodes.tooManyConnections.code);
    const total = (await metricValue(first.httpUrl, "gateway_rate_limited_total", { limit: "user_connections" })) + (await metricValue(second.httpUrl, "gateway_rate_limited_total", { limit: "user_connections" }));
    expect(total).toBeGreaterThanOrEqual(3);
  });

  it("lets exactly the limit in when a user opens many sockets at once on both nodes", async () => {
    const attempts = await Promise.all(Array.from({ length: 30 }, (_, i) => tryConnect((i % 2 === 0 ? first : second).wsUrl, { token: token({ sub: "swarm" }) })));
    for (const outcome of attempts) if (outcome.kind === "open") closers.push(() => outcome.client.close());
    expect(attempts.filter((outcome) => outcome.kind === "open")).toHaveLength(3);
    const refusals = attempts.flatMap((outcome) => (outcome.kind === "refused" ? [`${outcome.status} ${(JSON.parse(outcome.body) as { error: ErrorBody }).error.code}`] : []));
    expect(refusals).toEqual(Array.from({ length: 27 }, () => `429 ${ErrorCodes.tooManyConnections.code}`));
  });

  it("releases the connections of a node that was SIGKILLed within seconds", async () => {
    const [ws] = TRANSPORT_ADAPTERS as [TransportAdapter];
    // hog holds one connection on `first` and two on `second` now.
    expect(await refusedCode(ws, second, "hog")).toBe(ErrorCodes.tooManyConnections.code);
    const killedAt = Date.now();
    await first.proc.kill9();
    nodes.splice(nodes.indexOf(first), 1);
    await eventually(
      () => refusedCode(ws, second, "hog"),
      (code) => code === "open",
      15_000,
    );
    // The lease (5 s) plus a heartbeat (1 s), plus polling.
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(await refusedCode(ws, second, "hog")).toBe(ErrorCodes.tooManyConnections.code);
  });
});

describe("connections per user when a node stalls", () => {
  it("stops counting a stalled node's connections, and once it is back the count converges without leftovers", async () => {
    const prefix = uniquePrefix("stall");
    const env = { MAX_CONNECTIONS_PER_USER: "2" };
    const [stalling, steady] = await Promise.all([node("stall-1", env, prefix), node("stall-2", env, prefix)]);
    const [ws] = TRANSPORT_ADAPTERS as [TransportAdapter];
    const outcome = async (target: GatewayNode): Promise<ConnectOutcome> => {
      const result = await tryConnect(target.wsUrl, { token: token({ sub: "sleeper" }) });
      if (result.kind === "open") closers.push(() => result.client.close());
      return result;
    };
    const onStalling = [await open(ws, stalling, "sleeper"), await open(ws, stalling, "sleeper")];
    expect(await outcome(steady)).toMatchObject({ kind: "refused", status: 429 });

    process.kill(stalling.proc.pid, "SIGSTOP");
    let resumed = false;
    try {
      // Its lease (5 s) runs out: the other node stops counting its two connections.
      const admitted = await eventually(() => outcome(steady), (result) => result.kind === "open", 15_000);
      expect(admitted.kind).toBe("open");
      const lapsed = stalling.proc.waitForLine(/connection quota lease lapsed/, 10_000);
      process.kill(stalling.proc.pid, "SIGCONT");
      resumed = true;
      await lapsed;
    } finally {
      if (!resumed) process.kill(stalling.proc.pid, "SIGCONT");
    }

    // Everyone leaves; then exactly the limit gets in again, whichever node counted what.
    for (const client of onStalling) await client.close();
    await Promise.all(closers.splice(0).map((close) => close()));
    const again = await eventually(
      async () => {
        const first = await outcome(steady);
        return first.kind === "open" ? [first, await outcome(stalling), await outcome(steady)] : [first];
      },
      (results) => results.length === 3,
      10_000,
    );
    expect(again.map((result) => result.kind)).toEqual(["open", "open", "refused"]);
  });
});

describe("new connections per client address", () => {
  let guarded: GatewayNode;
  beforeAll(async () => {
    guarded = await node("address", { CONNECTS_PER_ADDRESS_PER_S: "1", CONNECT_BURST_PER_ADDRESS: "3", TRUSTED_PROXIES: "127.0.0.1/32" });
  });

  async function wsFrom(forwardedFor: string | null, localAddress = "127.0.0.1"): Promise<string> {
    const outcome = await tryConnect(guarded.wsUrl, {
      token: token({ sub: `addr-${newKey()}` }),
      localAddress,
      ...(forwardedFor === null ? {} : { headers: { "x-forwarded-for": forwardedFor } }),
    });
    if (outcome.kind === "open") {
      closers.push(() => outcome.client.close());
      return "open";
    }
    return `${outcome.status} ${(JSON.parse(outcome.body) as { error: ErrorBody }).error.code}`;
  }

  function socketIoFrom(forwardedFor: string): Promise<string> {
    const socket: Socket = io(guarded.httpUrl, { transports: ["websocket"], reconnection: false, extraHeaders: { authorization: `Bearer ${token({ sub: `addr-${newKey()}` })}`, "x-forwarded-for": forwardedFor } });
    closers.push(async () => socket.close());
    return new Promise((resolve) => {
      socket.once("welcome", () => resolve("open"));
      socket.once("connect_error", (err: Error & { data?: ErrorBody }) => resolve(err.data?.code ?? err.message));
    });
  }

  it("behind a trusted proxy: refuses the forwarded address past its burst with 429 connect_rate_limited, while another address connects", async () => {
    const outcomes = [];
    for (let i = 0; i < 4; i++) outcomes.push(await wsFrom("203.0.113.7"));
    expect(outcomes).toEqual(["open", "open", "open", `429 ${ErrorCodes.connectRateLimited.code}`]);
    expect(await socketIoFrom("10.1.2.3, 203.0.113.7")).toBe(ErrorCodes.connectRateLimited.code);
    expect(await wsFrom("198.51.100.9")).toBe("open");
    expect(await socketIoFrom("198.51.100.10")).toBe("open");
    expect(await metricValue(guarded.httpUrl, "gateway_rate_limited_total", { limit: "address_connects" })).toBe(2);
  });

  it("from an untrusted peer, ignores X-Forwarded-For: a client cannot pick its own address", async () => {
    const outcomes = [];
    for (let i = 0; i < 4; i++) outcomes.push(await wsFrom(`192.0.2.${i + 1}`, "127.0.0.2"));
    expect(outcomes).toEqual(["open", "open", "open", `429 ${ErrorCodes.connectRateLimited.code}`]);
    expect(await wsFrom(null, "127.0.0.3")).toBe("open");
  });
});

describe("commands in flight per user", () => {
  let postgres: PostgresHandle;
  let db: pg.Pool;
  let betting: GatewayNode;
  const schema = `rl_${process.pid}`;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    postgres = await startPostgres({ fast: true });
    db = testPool(postgres.url, 2);
    betting = await node("commands", { CLOCK_ENABLED: "true", DATABASE_URL: postgres.url, PG_SCHEMA: schema, ROUND_WAIT_MS: "600000", MAX_COMMANDS_IN_FLIGHT_PER_USER: "2" });
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await db?.end();
    await postgres?.stop();
  });

  async function bettor(sub: string): Promise<TestClient> {
    const c = await connect(betting.wsUrl, { token: token({ sub }) });
    clients.push(c);
    return c;
  }

  it("answers a user's commands past the bound too_many_commands at once, while another user's command is queued and committed", async () => {
    const greedy = await bettor("greedy");
    const patient = await bettor("patient");
    const round = await eventually(() => currentRound(greedy), (open) => open.roundId > 0, 20_000);
    const { roundId } = round;
    const locker = await db.connect();
    try {
      // Hold the table: the writer's transaction blocks, so commands stay in flight.
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE ${schema}.bets IN ACCESS EXCLUSIVE MODE`);
      const greedyBets = Array.from({ length: 5 }, () => placeBet(greedy, { roundId, selection: 1, amount: 100, odds: oddsOf(round, 1), idempotencyKey: newKey() }));
      const refused = (await Promise.all(greedyBets.slice(2))).map(outcomeOf);
      expect(refused).toEqual(Array.from({ length: 3 }, () => ({ ok: false, code: ErrorCodes.tooManyCommands.code })));
      const patientBet = placeBet(patient, { roundId, selection: 2, amount: 100, odds: oddsOf(round, 2), idempotencyKey: newKey() });
      await locker.query("COMMIT");
      expect(outcomeOf(await patientBet)).toMatchObject({ ok: true });
      for (const reply of await Promise.all(greedyBets.slice(0, 2))) expect(outcomeOf(reply)).toMatchObject({ ok: true });
    } finally {
      locker.release();
    }
    const { rows } = await db.query<{ user_id: string; n: string }>(`SELECT user_id, count(*)::text AS n FROM ${schema}.bets GROUP BY user_id ORDER BY user_id`);
    expect(rows).toEqual([
      { user_id: "greedy", n: "2" },
      { user_id: "patient", n: "1" },
    ]);
    expect(await metricValue(betting.httpUrl, "gateway_rate_limited_total", { limit: "user_commands" })).toBe(3);
    // The slots came back with the replies.
    expect(outcomeOf(await placeBet(greedy, { roundId, selection: 3, amount: 100, odds: oddsOf(round, 3), idempotencyKey: newKey() }))).toMatchObject({ ok: true });
  });
});
