/**
 * The client contract, one suite run unchanged against both transports: raw
 * `/ws` through the `ws` package and Socket.IO through socket.io-client, on
 * two real nodes sharing a real Redis (one with Postgres and the round clock,
 * one without a database). Every request, every refusal either transport can
 * produce, the limits, and deliveries, with identical answers, messages
 * included, on both.
 */

import jwt from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CloseCodes } from "../../shared/src/codes.js";
import { MAX_COMMAND_NAME_LENGTH } from "../../shared/src/requests.js";
import { startPostgres, type PostgresHandle } from "../../scripts/lib/postgres.js";
import { startRedis, type RedisHandle } from "../../scripts/lib/redis.js";
import { newKey } from "./support/bets.js";
import { eventually } from "./support/eventually.js";
import { startGatewayNode, TEST_PUBLISH_KEY, uniquePrefix, type GatewayNode } from "./support/gateway-node.js";
import { metricValue } from "./support/metrics.js";
import { token } from "./support/tokens.js";
import { TRANSPORT_ADAPTERS, type ContractClient, type TransportAdapter, type WireAnswer } from "./support/transport-clients.js";
import { publish } from "./support/ws-client.js";

const MAX_JSON_DEPTH = 32;
const MAX_SUBSCRIPTIONS = 4;

let redis: RedisHandle;
let postgres: PostgresHandle;
/** Postgres and the round clock: commands run here. */
let betting: GatewayNode;
/** No database: commands are refused with `unavailable`. */
let plain: GatewayNode;
const clients: ContractClient[] = [];

/** `{"a":{"a":…1…}}`, `levels` objects deep. */
function nested(levels: number): unknown {
  return JSON.parse('{"a":'.repeat(levels) + "1" + "}".repeat(levels)) as unknown;
}

/** A token's `exp` in ms, as the welcome and refresh replies carry it. */
function expiryOf(signed: string): number {
  return (jwt.decode(signed) as { exp: number }).exp * 1000;
}

/** An ok subscribe reply: the channel and the position its live messages follow. */
function subscribed(channel: string): Record<string, unknown> {
  return { ok: true, channel, offset: expect.any(Number), epoch: expect.any(String) };
}

function refusal(code: string, message?: string): object {
  return { ok: false, error: { code, message: message ?? expect.any(String) } };
}

beforeAll(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres({ fast: true })]);
  const prefix = uniquePrefix("contract");
  const limits = { MAX_SUBSCRIPTIONS: String(MAX_SUBSCRIPTIONS), MAX_JSON_DEPTH: String(MAX_JSON_DEPTH), JWT_CLOCK_TOLERANCE_S: "0" };
  [betting, plain] = await Promise.all([
    startGatewayNode({
      name: "contract-bets",
      redisUrl: redis.url,
      redisPrefix: prefix,
      env: { ...limits, CLOCK_ENABLED: "true", DATABASE_URL: postgres.url, PG_SCHEMA: `contract_${process.pid}`, ROUND_WAIT_MS: "600000", RACE_RUNNERS: "6" },
    }),
    startGatewayNode({ name: "contract-plain", redisUrl: redis.url, redisPrefix: prefix, env: limits }),
  ]);
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all([betting?.stop(), plain?.stop()]);
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

describe.each(TRANSPORT_ADAPTERS)("client contract over $name", (adapter: TransportAdapter) => {
  const t = adapter.name;

  async function connect(node: GatewayNode, sub: string, claims: Record<string, unknown> = {}, expiresIn = 3600): Promise<ContractClient> {
    const outcome = await adapter.tryConnect(node, token({ sub, ...claims }, { expiresIn }));
    if (!outcome.ok) throw new Error(`connect refused: ${outcome.code}`);
    clients.push(outcome.client);
    return outcome.client;
  }

  describe("connecting", () => {
    it("welcomes with the node, the user, the personal channel and the token's expiry", async () => {
      const before = Date.now();
      const signed = token({ sub: `${t}-welcome` }, { expiresIn: 600 });
      const outcome = await adapter.tryConnect(plain, signed);
      if (!outcome.ok) throw new Error(`connect refused: ${outcome.code}`);
      clients.push(outcome.client);
      expect(outcome.client.welcome).toEqual({
        node: plain.name,
        user: `${t}-welcome`,
        serverTime: expect.any(Number),
        channels: [`user:${t}-welcome`],
        positions: { [`user:${t}-welcome`]: { offset: expect.any(Number), epoch: expect.any(String) } },
        expiresAt: expiryOf(signed),
      });
      expect(outcome.client.welcome.serverTime).toBeGreaterThanOrEqual(before - 1000);
    });

    it("refuses a bad or expired token with invalid_token", async () => {
      for (const bad of ["garbage", token({ sub: `${t}-late` }, { expiresIn: -10 })]) {
        expect(await adapter.tryConnect(plain, bad)).toEqual({ ok: false, code: "invalid_token" });
      }
    });

    it("delivers personal messages from the welcome on", async () => {
      const client = await connect(plain, `${t}-personal`);
      const res = await publish(betting.httpUrl, TEST_PUBLISH_KEY, { channel: `user:${t}-personal`, event: "portfolio_update", data: { cash: 7 } });
      expect(res.status).toBe(200);
      const { offset, epoch } = res.json as { offset: number; epoch: string };
      expect(await client.waitForMessage((m) => m.event === "portfolio_update")).toEqual({
        type: "message",
        channel: `user:${t}-personal`,
        event: "portfolio_update",
        data: { cash: 7 },
        offset,
        epoch,
        ts: expect.any(Number),
      });
    });
  });

  describe("subscriptions", () => {
    it("allows public channels and the own personal channel, forbids others", async () => {
      const c = await connect(plain, `${t}-erin`);
      expect(await c.request("subscribe", { channel: "forecasts" })).toEqual(subscribed("forecasts"));
      expect(await c.request("subscribe", { channel: `user:${t}-frank` })).toEqual(refusal("forbidden", `not allowed to subscribe to user:${t}-frank`));
      expect(await c.request("subscribe", { channel: "vip" })).toEqual(refusal("forbidden", "not allowed to subscribe to vip"));
      expect(await c.request("subscribe", { channel: "bad channel!" })).toEqual(refusal("invalid_channel"));
      expect(await c.request("subscribe", { channel: "forecasts" })).toEqual(refusal("already_subscribed", "already subscribed to forecasts"));
    });

    it("honours exact and prefix grants from the channels claim", async () => {
      const c = await connect(plain, `${t}-gina`, { channels: ["vip", "odds:*"] });
      expect(await c.request("subscribe", { channel: "vip" })).toMatchObject({ ok: true });
      expect(await c.request("subscribe", { channel: "odds:race-7" })).toMatchObject({ ok: true });
      expect(await c.request("subscribe", { channel: "vip2" })).toEqual(refusal("forbidden"));
    });

    it("refuses tokens whose grants would reach other users or cross a namespace boundary, and subs with a colon", async () => {
      for (const channels of [["user:*"], ["user*"], ["u*"], ["vip*"]]) {
        expect(await adapter.tryConnect(plain, token({ sub: `${t}-greedy`, channels }))).toEqual({ ok: false, code: "invalid_token" });
      }
      // `alice:orders` would own `user:alice:orders`.
      expect(await adapter.tryConnect(plain, token({ sub: `${t}-alice:orders` }))).toEqual({ ok: false, code: "invalid_token" });
    });

    it("reaches another user's channel only through an exact grant naming it", async () => {
      const c = await connect(plain, `${t}-support`, { channels: [`user:${t}-bob`, "vip:*"] });
      expect(await c.request("subscribe", { channel: `user:${t}-bob` })).toMatchObject({ ok: true });
      expect(await c.request("subscribe", { channel: `user:${t}-carol` })).toEqual(refusal("forbidden"));
      expect(await c.request("subscribe", { channel: "vip:lounge" })).toMatchObject({ ok: true });
      expect(await c.request("subscribe", { channel: "vipadmin" })).toEqual(refusal("forbidden"));
    });

    it("caps subscriptions per connection, the personal channel included", async () => {
      const c = await connect(plain, `${t}-hank`, { channels: ["c:*"] });
      for (const channel of ["c:1", "c:2", "c:3"]) expect(await c.request("subscribe", { channel })).toEqual(subscribed(channel));
      expect(await c.request("subscribe", { channel: "c:4" })).toEqual(refusal("limit_exceeded", `at most ${MAX_SUBSCRIPTIONS} subscriptions per connection`));
    });

    it("answers a race subscription with the round's snapshot", async () => {
      const c = await connect(plain, `${t}-race`);
      const reply = await eventually(
        async () => {
          const answer = await c.request("subscribe", { channel: "race" });
          if (answer.ok && !("snapshot" in answer)) await c.request("unsubscribe", { channel: "race" });
          return answer;
        },
        (answer) => answer.ok && "snapshot" in answer,
      );
      expect(reply).toMatchObject({ ok: true, channel: "race", snapshot: { event: "timer_update", data: { roundId: expect.any(Number) } } });
    });

    it("delivers a channel's messages across nodes, and stops after unsubscribe", async () => {
      const channel = `forecasts:${t}`;
      const c = await connect(plain, `${t}-ivy`);
      expect(await c.request("subscribe", { channel })).toEqual(subscribed(channel));
      const res = await publish(betting.httpUrl, TEST_PUBLISH_KEY, { channel, event: "forecast_update", data: { p: 0.5 } });
      const { offset, epoch } = res.json as { offset: number; epoch: string };
      expect(await c.waitForMessage((m) => m.channel === channel)).toEqual({ type: "message", channel, event: "forecast_update", data: { p: 0.5 }, offset, epoch, ts: expect.any(Number) });

      expect(await c.request("unsubscribe", { channel })).toEqual({ ok: true, channel });
      expect(await c.request("unsubscribe", { channel })).toEqual(refusal("not_subscribed", `not subscribed to ${channel}`));
      await publish(betting.httpUrl, TEST_PUBLISH_KEY, { channel, event: "after", data: 1 });
      await publish(betting.httpUrl, TEST_PUBLISH_KEY, { channel: `user:${t}-ivy`, event: "marker", data: null });
      await c.waitForMessage((m) => m.event === "marker");
      expect(c.messages(channel)).toHaveLength(1);
    });
  });

  describe("resume with since", () => {
    type Position = { offset: number; epoch: string };
    const seqOf = (m: { data: unknown }): number => (m.data as { seq: number }).seq;

    async function publishSeq(channel: string, seq: number): Promise<Position> {
      const res = await publish((seq % 2 === 0 ? plain : betting).httpUrl, TEST_PUBLISH_KEY, { channel, event: "forecast_update", data: { seq } });
      expect(res.status).toBe(200);
      return res.json as Position;
    }

    it("replays every message after since before live ones: recovered, no gap, no duplicate", async () => {
      const channel = `forecasts:${t}-resume`;
      const first = await connect(plain, `${t}-resume-a`);
      expect(await first.request("subscribe", { channel })).toEqual(subscribed(channel));
      const positions: Position[] = [];
      for (let seq = 0; seq < 5; seq++) positions.push(await publishSeq(channel, seq));
      await first.waitForMessage((m) => m.channel === channel && seqOf(m) === 4);
      await first.close();
      for (let seq = 5; seq < 8; seq++) positions.push(await publishSeq(channel, seq));

      const since = positions[1] as Position;
      const again = await connect(betting, `${t}-resume-b`);
      expect(await again.request("subscribe", { channel, since })).toEqual({ ok: true, channel, offset: (positions[7] as Position).offset, epoch: since.epoch, recovered: true });
      await publishSeq(channel, 8);
      await again.waitForMessage((m) => m.channel === channel && seqOf(m) === 8);
      expect(again.messages(channel).map(seqOf)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    });

    it("has no gap and no duplicate at the seam while publishes keep arriving during the resume", async () => {
      const channel = `forecasts:${t}-seam`;
      const start = await publishSeq(channel, 0);
      let seq = 1;
      let stop = false;
      const publishing = (async () => {
        // Bounded: at most 400 publishes or 10 s, whichever ends first.
        const deadline = Date.now() + 10_000;
        while (!stop && seq < 400 && Date.now() < deadline) await publishSeq(channel, seq++);
      })();
      await eventually(async () => seq, (n) => n > 20);
      const c = await connect(plain, `${t}-seam`);
      const answer = await c.request("subscribe", { channel, since: start });
      expect(answer).toMatchObject({ ok: true, recovered: true });
      await eventually(async () => seq, (n) => n > ((answer as { offset?: number }).offset ?? 0) + 20);
      stop = true;
      await publishing;
      await c.waitForMessage((m) => m.channel === channel && seqOf(m) === seq - 1, 10_000);
      const offsets = c.messages(channel).map((m) => m.offset);
      expect(offsets).toEqual(Array.from({ length: seq - 1 }, (_, i) => start.offset + 1 + i));
    });

    it("says recovered: false with the current position when history no longer holds what was missed", async () => {
      const channel = `forecasts:${t}-old`;
      const first = await publishSeq(channel, 0);
      let last = first;
      // The forecasts namespace keeps 100 messages.
      for (let seq = 1; seq <= 105; seq++) last = await publishSeq(channel, seq);
      const c = await connect(plain, `${t}-old`);
      expect(await c.request("subscribe", { channel, since: first })).toEqual({ ok: true, channel, offset: last.offset, epoch: last.epoch, recovered: false });
      await publishSeq(channel, 106);
      await c.waitForMessage((m) => m.channel === channel && seqOf(m) === 106);
      expect(c.messages(channel).map(seqOf)).toEqual([106]);
    });

    it("says recovered: false for another epoch, or an offset the channel never reached", async () => {
      const channel = `forecasts:${t}-epoch`;
      const now = await publishSeq(channel, 0);
      const c = await connect(plain, `${t}-epoch`);
      expect(await c.request("subscribe", { channel, since: { offset: now.offset, epoch: "another" } })).toEqual({ ok: true, channel, ...now, recovered: false });
      await c.request("unsubscribe", { channel });
      expect(await c.request("subscribe", { channel, since: { offset: now.offset + 50, epoch: now.epoch } })).toEqual({ ok: true, channel, ...now, recovered: false });
    });

    it("brings the race snapshot when a race resume is not recovered", async () => {
      const c = await connect(betting, `${t}-race-resume`);
      const answer = await eventually(
        async () => {
          const reply = await c.request("subscribe", { channel: "race", since: { offset: 0, epoch: "gone" } });
          if (reply.ok && !("snapshot" in reply)) await c.request("unsubscribe", { channel: "race" });
          return reply;
        },
        (reply) => reply.ok && "snapshot" in reply,
      );
      expect(answer).toMatchObject({ ok: true, channel: "race", recovered: false, snapshot: { event: "timer_update" } });
    });

    it("resumes the personal channel from since on connect: the missed messages follow the welcome", async () => {
      const sub = `${t}-returning`;
      const personal = `user:${sub}`;
      const first = await connect(plain, sub);
      const at = first.welcome.positions[personal] as Position;
      expect(at).toMatchObject({ offset: expect.any(Number), epoch: expect.any(String) });
      await first.close();
      for (let seq = 0; seq < 3; seq++) await publishSeq(personal, seq);
      const outcome = await adapter.tryConnect(betting, token({ sub }), at);
      if (!outcome.ok) throw new Error(`connect refused: ${outcome.code}`);
      clients.push(outcome.client);
      expect(outcome.client.welcome).toMatchObject({ recovered: true, positions: { [personal]: { offset: at.offset + 3, epoch: at.epoch } } });
      await outcome.client.waitForMessage((m) => m.channel === personal && seqOf(m) === 2);
      expect(outcome.client.messages(personal).map(seqOf)).toEqual([0, 1, 2]);
    });

    it("refuses a malformed since on connect with bad_request", async () => {
      const outcome = await adapter.tryConnect(plain, token({ sub: `${t}-bad-since` }), { offset: -1, epoch: "x" });
      expect(outcome).toEqual({ ok: false, code: "bad_request" });
    });
  });

  describe("ping, refresh and expiry", () => {
    it("answers ping with the server time", async () => {
      const c = await connect(plain, `${t}-nina`);
      const before = Date.now();
      const reply = await c.request("ping", {});
      expect(reply).toEqual({ ok: true, serverTime: expect.any(Number) });
      expect((reply as unknown as { serverTime: number }).serverTime).toBeGreaterThanOrEqual(before - 1000);
    });

    it("refreshes a token for the same user, refuses another user's and a bad one", async () => {
      const c = await connect(plain, `${t}-oscar`, { channels: ["vip"] });
      await c.request("subscribe", { channel: "vip" });
      expect(await c.request("refresh", { token: token({ sub: "someone-else" }) })).toEqual(refusal("forbidden", "refresh token is for another user"));
      expect(await c.request("refresh", { token: token({ sub: `${t}-oscar` }, { expiresIn: -10 }) })).toEqual(refusal("invalid_token"));
      // The new token drops the vip grant: the server unsubscribes it and says so.
      const fresh = token({ sub: `${t}-oscar` }, { expiresIn: 7200 });
      expect(await c.request("refresh", { token: fresh })).toEqual({ ok: true, expiresAt: expiryOf(fresh), unsubscribed: ["vip"] });
    });

    it("refuses a refresh with a token issued before the one the connection holds", async () => {
      const sub = `${t}-rewind`;
      const now = Math.floor(Date.now() / 1000);
      const c = await connect(plain, sub, { iat: now });
      // An older token with broader grants must not be replayed over the newer one.
      const older = token({ sub, iat: now - 60, channels: ["vip"] });
      expect(await c.request("refresh", { token: older })).toEqual(refusal("forbidden", "refresh token was issued before the current one"));
      expect(await c.request("subscribe", { channel: "vip" })).toEqual(refusal("forbidden"));
      // Without iat a token cannot be ordered after the current one.
      expect(await c.request("refresh", { token: token({ sub }, { noTimestamp: true }) })).toEqual(refusal("forbidden", "refresh token was issued before the current one"));
      // The same second, or later, is fine.
      expect(await c.request("refresh", { token: token({ sub, iat: now }) })).toMatchObject({ ok: true });
      expect(await c.request("refresh", { token: token({ sub, iat: now + 1 }) })).toMatchObject({ ok: true });
      expect(await c.request("refresh", { token: token({ sub, iat: now }) })).toEqual(refusal("forbidden", "refresh token was issued before the current one"));
    });

    it(`closes with ${CloseCodes.tokenExpired.code} when the token expires without a refresh`, async () => {
      const c = await connect(plain, `${t}-pia`, {}, 2);
      expect(await c.closed).toEqual({ code: CloseCodes.tokenExpired.code, reason: CloseCodes.tokenExpired.reason });
    });

    it("keeps a connection whose token was refreshed before expiry", async () => {
      const c = await connect(plain, `${t}-quinn`, {}, 2);
      expect(await c.request("refresh", { token: token({ sub: `${t}-quinn` }, { expiresIn: 60 }) })).toMatchObject({ ok: true });
      // Past the first token's expiry (plus the wheel's one-second tick), the connection still answers.
      const firstExpiry = c.welcome.expiresAt!;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, firstExpiry + 1500 - Date.now())));
      expect(await c.request("ping", {})).toMatchObject({ ok: true });
    });
  });

  describe("commands", () => {
    async function currentRound(c: ContractClient): Promise<{ roundId: number; odds: number[] }> {
      const answer = await eventually(
        async () => {
          const reply = await c.request("subscribe", { channel: "race" });
          if (reply.ok) await c.request("unsubscribe", { channel: "race" });
          return reply;
        },
        (reply) => reply.ok && "snapshot" in reply,
      );
      const { roundId, odds } = (answer as unknown as { snapshot: { data: { roundId: number; odds: number[] } } }).snapshot.data;
      return { roundId, odds };
    }

    it("places a bet once per idempotency key, acked after the commit", async () => {
      const c = await connect(betting, `${t}-better`);
      const { roundId, odds } = await currentRound(c);
      const data = { roundId, selection: 2, amount: 300, odds: odds[1] as number, idempotencyKey: newKey() };
      const first = await c.request("command", { name: "place_bet", data }, 15_000);
      expect(first).toEqual({ ok: true, result: { bet: { betId: expect.any(String), roundId, selection: 2, amount: 300, odds: data.odds, placedAt: expect.any(Number), duplicate: false } } });
      const again = await c.request("command", { name: "place_bet", data }, 15_000);
      expect(again).toEqual({ ok: true, result: { bet: { ...(first as unknown as { result: { bet: object } }).result.bet, duplicate: true } } });
    });

    it("refuses what the command handler refuses", async () => {
      const c = await connect(betting, `${t}-refused`);
      const { roundId, odds } = await currentRound(c);
      const price = odds[0] as number;
      expect(await c.request("command", { name: "place_bet", data: { roundId } })).toEqual(refusal("invalid_command", "selection must be a positive integer (a runner number)"));
      expect(await c.request("command", { name: "place_bet", data: { roundId: roundId + 1000, selection: 1, amount: 300, odds: price, idempotencyKey: newKey() } })).toEqual(
        refusal("round_closed", `round ${roundId + 1000} is not open for bets`),
      );
      expect(await c.request("command", { name: "place_bet", data: { roundId, selection: 1, amount: 300, odds: price + 1, idempotencyKey: newKey() } })).toEqual(
        refusal("odds_changed", `the odds of runner 1 in round ${roundId} are ${price}, not ${price + 1}`),
      );
      const key = newKey();
      expect(await c.request("command", { name: "place_bet", data: { roundId, selection: 1, amount: 300, odds: price, idempotencyKey: key } }, 15_000)).toMatchObject({ ok: true });
      expect(await c.request("command", { name: "place_bet", data: { roundId, selection: 1, amount: 301, odds: price, idempotencyKey: key } }, 15_000)).toEqual(refusal("conflict"));
      expect(await c.request("command", { name: "x".repeat(MAX_COMMAND_NAME_LENGTH), data: null })).toEqual(refusal("unknown_command"));
    });

    it("refuses commands on a node without a database with unavailable", async () => {
      const c = await connect(plain, `${t}-nodb`);
      expect(await c.request("command", { name: "place_bet", data: {} })).toEqual(refusal("unavailable", "this node takes no commands (no database configured)"));
    });
  });

  describe("malformed requests", () => {
    const cases: ReadonlyArray<{ readonly name: string; readonly type: string; readonly fields: object; readonly answer: WireAnswer }> = [
      { name: "an unknown type", type: "dance", fields: {}, answer: { ok: false, error: { code: "unknown_type", message: 'unknown frame type "dance"' } } },
      { name: "subscribe without channel", type: "subscribe", fields: {}, answer: { ok: false, error: { code: "bad_request", message: "subscribe needs channel" } } },
      { name: "subscribe with a number channel", type: "subscribe", fields: { channel: 7 }, answer: { ok: false, error: { code: "bad_request", message: "subscribe.channel must be string" } } },
      { name: "unsubscribe without channel", type: "unsubscribe", fields: {}, answer: { ok: false, error: { code: "bad_request", message: "unsubscribe needs channel" } } },
      { name: "refresh without token", type: "refresh", fields: {}, answer: { ok: false, error: { code: "bad_request", message: "refresh needs token" } } },
      { name: "refresh with an empty token", type: "refresh", fields: { token: "" }, answer: { ok: false, error: { code: "bad_request", message: expect.stringMatching(/^refresh\.token /) as string } } },
      { name: "command without data", type: "command", fields: { name: "place_bet" }, answer: { ok: false, error: { code: "bad_request", message: "command needs data" } } },
      { name: "command without name", type: "command", fields: { data: 1 }, answer: { ok: false, error: { code: "bad_request", message: "command needs name" } } },
      {
        name: `a command name of ${MAX_COMMAND_NAME_LENGTH + 1} characters`,
        type: "command",
        fields: { name: "x".repeat(MAX_COMMAND_NAME_LENGTH + 1), data: null },
        answer: { ok: false, error: { code: "bad_request", message: `command.name must not have more than ${MAX_COMMAND_NAME_LENGTH} characters` } },
      },
      {
        name: "command data nested one level too deep",
        type: "command",
        fields: { name: "place_bet", data: nested(MAX_JSON_DEPTH + 1) },
        answer: { ok: false, error: { code: "bad_request", message: `frame nests deeper than ${MAX_JSON_DEPTH + 1} levels` } },
      },
      {
        name: "a __proto__ key",
        type: "subscribe",
        fields: JSON.parse('{"channel":"forecasts","__proto__":{"polluted":true}}') as object,
        answer: { ok: false, error: { code: "bad_request", message: 'frame has the key "__proto__", which no request accepts' } },
      },
      {
        name: "a constructor key deep in command data",
        type: "command",
        fields: { name: "place_bet", data: { a: [{ constructor: { prototype: { polluted: true } } }] } },
        answer: { ok: false, error: { code: "bad_request", message: 'frame has the key "constructor", which no request accepts' } },
      },
    ];

    for (const { name, type, fields, answer } of cases) {
      it(`refuses ${name}`, async () => {
        const c = await connect(plain, `${t}-bad`);
        expect(await c.request(type, fields)).toEqual(answer);
        // The connection stays usable.
        expect(await c.request("ping", {})).toMatchObject({ ok: true });
      });
    }

    it("lets command data nest exactly MAX_JSON_DEPTH levels through to the command", async () => {
      const c = await connect(betting, `${t}-deep`);
      expect(await c.request("command", { name: "place_bet", data: nested(MAX_JSON_DEPTH) })).toEqual(refusal("invalid_command", "unknown field: a"));
    });

    it("ignores fields a request does not list", async () => {
      const c = await connect(plain, `${t}-extra`);
      expect(await c.request("subscribe", { channel: "forecasts", extra: [1] })).toEqual(subscribed("forecasts"));
      expect(await c.request("ping", { note: "hi" })).toMatchObject({ ok: true });
    });

    it(`counts every request on arrival by type, refusals as invalid, in gateway_messages_in_total{transport="${t}"}`, async () => {
      const c = await connect(plain, `${t}-counted`);
      const count = (type: string): Promise<number> => metricValue(plain.httpUrl, "gateway_messages_in_total", { transport: t, type });
      const before = await Promise.all([count("ping"), count("subscribe"), count("invalid")]);
      await c.request("ping", {});
      await c.request("subscribe", { channel: "vip" });
      await c.request("dance", {});
      await c.request("subscribe", {});
      expect(await Promise.all([count("ping"), count("subscribe"), count("invalid")])).toEqual([before[0] + 1, before[1] + 1, before[2] + 2]);
    });
  });
});

describe("both transports", () => {
  it("receive the same frame for the same publish", async () => {
    const channel = "forecasts:both";
    const receivers: ContractClient[] = [];
    for (const adapter of TRANSPORT_ADAPTERS) {
      for (const node of [betting, plain]) {
        const outcome = await adapter.tryConnect(node, token({ sub: `both-${adapter.name}-${node.name}` }));
        if (!outcome.ok) throw new Error(`connect refused: ${outcome.code}`);
        clients.push(outcome.client);
        expect(await outcome.client.request("subscribe", { channel })).toEqual(subscribed(channel));
        receivers.push(outcome.client);
      }
    }
    await publish(plain.httpUrl, TEST_PUBLISH_KEY, { channel, event: "forecast_update", data: { asset: "BTC", p: 0.61, nested: [{ x: null }] } });
    const frames = await Promise.all(receivers.map((client) => client.waitForMessage((m) => m.channel === channel)));
    for (const frame of frames) expect(frame).toEqual(frames[0]);
  });
});
