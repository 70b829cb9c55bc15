/**
 * No acknowledged bet is ever lost: not when Postgres stops and comes back
 * under load, not when a node is told to shut down under load. Clients behave
 * as the protocol says: an unanswered or refused bet is retried with the same
 * idempotency key until it is acknowledged.
 */

import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { CloseCodes } from "../../shared/src/codes.js";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { currentRound, newKey, oddsOf, outcomeOf, placeBet } from "./support/bets.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { token } from "./support/tokens.js";
import { connect, type TestClient } from "./support/ws-client.js";

let redis: RedisHandle;
let postgres: PostgresHandle;
const dataDir = path.join(os.tmpdir(), `gw-bets-pg-${process.pid}-${Date.now()}`);
const schema = `betsfail_${process.pid}`;
let prefix: string;
let nodes: GatewayNode[] = [];
let roundId = 0;
let odds = 0;
const clients: TestClient[] = [];

function env(): Record<string, string> {
  return { CLOCK_ENABLED: "true", DATABASE_URL: postgres.url, PG_SCHEMA: schema, ROUND_WAIT_MS: "600000", DRAIN_WINDOW_MS: "1000", PG_CONNECT_TIMEOUT_MS: "1000" };
}

async function client(node: GatewayNode, sub: string): Promise<TestClient> {
  const c = await connect(node.wsUrl, { token: token({ sub }) });
  clients.push(c);
  return c;
}

async function storedBets(userPrefix: string): Promise<Map<string, string>> {
  const db = new pg.Client({ connectionString: postgres.url });
  // The server may be stopped by the next step while this client is closing.
  db.on("error", (err) => process.stderr.write(`test pg client error: ${err.message}\n`));
  await db.connect();
  try {
    const { rows } = await db.query<{ id: string; user_id: string; idempotency_key: string }>(`SELECT id::text, user_id, idempotency_key FROM ${schema}.bets WHERE user_id LIKE $1`, [`${userPrefix}%`]);
    return new Map(rows.map((row) => [`${row.user_id}/${row.idempotency_key}`, row.id]));
  } finally {
    await db.end();
  }
}

/**
 * A bettor that keeps placing bets until told to stop, retrying every key
 * that was not acknowledged. `acked` maps user/key → bet id.
 */
class Bettor {
  readonly acked = new Map<string, string>();
  readonly unacked = new Set<string>();
  private running = true;

  constructor(
    private socket: TestClient,
    readonly user: string,
  ) {}

  stop(): void {
    this.running = false;
  }

  replaceSocket(socket: TestClient): void {
    this.socket = socket;
  }

  async run(deadline: number): Promise<void> {
    for (let i = 0; this.running && Date.now() < deadline && i < 2000; i++) {
      await this.attempt(newKey());
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Retries every unacknowledged key until all are acknowledged (bounded). */
  async settle(deadline: number): Promise<void> {
    while (this.unacked.size > 0 && Date.now() < deadline) {
      for (const key of [...this.unacked]) await this.attempt(key);
      if (this.unacked.size > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private async attempt(key: string): Promise<void> {
    this.unacked.add(key);
    let outcome: ReturnType<typeof outcomeOf>;
    try {
      outcome = outcomeOf(await placeBet(this.socket, { roundId, selection: 1, amount: 100, odds, idempotencyKey: key }, 3000));
    } catch {
      return; // no reply (socket closing): retried later with the same key
    }
    if (!outcome.ok) return;
    const previous = this.acked.get(key);
    // The same key must always be answered with the same bet.
    if (previous !== undefined && previous !== outcome.betId) throw new Error(`key ${key} answered with ${outcome.betId} after ${previous}`);
    this.acked.set(key, outcome.betId);
    this.unacked.delete(key);
  }

  keys(): Map<string, string> {
    return new Map([...this.acked].map(([key, id]) => [`${this.user}/${key}`, id]));
  }
}

function expectAllStored(bettors: Bettor[], stored: Map<string, string>, userPrefix: string): void {
  let acked = 0;
  for (const bettor of bettors) {
    expect(bettor.unacked.size, `${bettor.user} still has unacknowledged bets`).toBe(0);
    for (const [key, betId] of bettor.keys()) {
      acked++;
      expect(stored.get(key), `acked bet ${key} missing or different in the database`).toBe(betId);
    }
  }
  // Nothing beyond what was acknowledged: no duplicates, no strays.
  expect([...stored.keys()].filter((key) => key.startsWith(userPrefix))).toHaveLength(acked);
}

beforeAll(async () => {
  redis = await startRedis();
  postgres = await startPostgres({ fast: true, dataDir });
  prefix = uniquePrefix("betsfail");
  nodes = await Promise.all(["fail-1", "fail-2"].map((name) => startGatewayNode({ name, redisUrl: redis.url, redisPrefix: prefix, env: env() })));
  const probe = await client(nodes[0]!, "probe");
  const round = await eventually(() => currentRound(probe), (r) => r.roundId > 0);
  roundId = round.roundId;
  odds = oddsOf(round, 1);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((node) => (node.proc.isRunning() ? node.stop() : Promise.resolve(null))));
  await Promise.all([redis?.stop(), postgres?.stop()]);
  await rm(dataDir, { recursive: true, force: true });
});

describe("bets under failure", () => {
  it("loses no acknowledged bet when Postgres stops and restarts mid-load", async () => {
    onTestFailed(() => {
      for (const node of nodes) process.stderr.write(`--- ${node.name}\n${node.proc.output().slice(-6000)}\n`);
    });
    const bettors = await Promise.all(Array.from({ length: 8 }, async (_, i) => new Bettor(await client(nodes[i % 2]!, `pgr-${i}`), `pgr-${i}`)));
    const load = Promise.all(bettors.map((b) => b.run(Date.now() + 20_000)));

    await eventually(async () => bettors.reduce((n, b) => n + b.acked.size, 0), (n) => n >= 50);
    const port = postgres.port;
    await postgres.stop();
    // Readiness tells operators the database is gone.
    const readiness = await eventually(async () => (await fetch(`${nodes[0]!.httpUrl}/readyz`)).json() as Promise<{ reason?: string }>, (body) => body.reason === "postgres unavailable");
    expect(readiness.reason).toBe("postgres unavailable");
    const ackedWhileDown = bettors.reduce((n, b) => n + b.acked.size, 0);

    postgres = await startPostgres({ fast: true, dataDir, port });
    await eventually(async () => (await fetch(`${nodes[0]!.httpUrl}/readyz`)).status, (status) => status === 200, 20_000);
    await eventually(async () => bettors.reduce((n, b) => n + b.acked.size, 0), (n) => n >= ackedWhileDown + 50, 20_000);
    for (const b of bettors) b.stop();
    await load;
    await Promise.all(bettors.map((b) => b.settle(Date.now() + 20_000)));

    expectAllStored(bettors, await storedBets("pgr-"), "pgr-");
  });

  it("loses no acknowledged bet when a node is SIGTERMed mid-load", async () => {
    const [leaving, staying] = nodes as [GatewayNode, GatewayNode];
    const bettors = await Promise.all(Array.from({ length: 8 }, async (_, i) => new Bettor(await client(i % 2 === 0 ? leaving : staying, `term-${i}`), `term-${i}`)));
    const load = Promise.all(bettors.map((b) => b.run(Date.now() + 15_000)));
    await eventually(async () => bettors.reduce((n, b) => n + b.acked.size, 0), (n) => n >= 50);

    leaving.proc.child.kill("SIGTERM");
    const exit = await leaving.proc.exited;
    expect(exit.code).toBe(0);
    // Bettors that were on the leaving node were told to reconnect, and do so elsewhere.
    for (let i = 0; i < bettors.length; i += 2) {
      const closed = await clients.find((c) => c.welcome?.user === `term-${i}`)!.closed;
      expect(closed.code).toBe(CloseCodes.serverRestart.code);
      bettors[i]!.replaceSocket(await client(staying, `term-${i}`));
    }
    await eventually(async () => bettors.reduce((n, b) => n + b.acked.size, 0), (n) => n >= 150, 15_000);
    for (const b of bettors) b.stop();
    await load;
    await Promise.all(bettors.map((b) => b.settle(Date.now() + 15_000)));

    expectAllStored(bettors, await storedBets("term-"), "term-");
  });
});
