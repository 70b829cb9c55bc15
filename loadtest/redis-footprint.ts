/**
 * npm run bench:redis [-- --quick] [-- --users N] [-- --messages M]
 *
 * What the gateway costs Redis, measured through the gateway's own broker
 * (RedisBroker: the publish script, SUBSCRIBE per channel) against a real
 * redis-server, for sizing Redis (docs/operations.md, "Sizing Redis"):
 *
 *   1. memory per subscribed channel: every connected user's `user:<sub>` is
 *      one pub/sub channel, held by the pod the user is connected to;
 *   2. memory per channel state (offset + epoch hash, CHANNEL_STATE_TTL_S),
 *      and the cost of a publish to a channel with one subscribing pod;
 *   3. the cost of one broadcast (`race`) as the number of subscribing pods grows.
 *
 * Redis' own figures (INFO memory, INFO commandstats, used_cpu_*) are read, so
 * the client's CPU on this shared machine does not count against Redis.
 */

import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { pino } from "pino";
import { redisConnections } from "../gateway/src/redis/connections.js";
import { RedisKeyspace } from "../gateway/src/broker/redis-keys.js";
import { DEFAULT_CHANNEL_HISTORY, HistoryPolicy } from "../gateway/src/history/history-policy.js";
import { RedisBroker, type BrokerMetrics } from "../gateway/src/broker/redis-broker.js";
import type { Publication } from "../gateway/src/broker/broker.js";
import { encodeFrameHead } from "../gateway/src/fanout/message-frame.js";
import { startRedis } from "../scripts/lib/redis.js";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    users: { type: "string" },
    messages: { type: "string" },
  },
  strict: true,
});
const USERS = Number(values.users ?? (values.quick ? 20_000 : 100_000));
const MESSAGES = Number(values.messages ?? (values.quick ? 5_000 : 20_000));
/** Gateway pods holding the users' channels in step 1. */
const USER_PODS = 4;
const POD_COUNTS = [1, 4, 16];
/** Publishes in flight at once, as several nodes and backends would keep. */
const IN_FLIGHT = 64;
const PREFIX = "gw";
/** A `timer_update`-sized payload (~200 bytes on the wire, as in docs/performance.md). */
const RACE_DATA = JSON.stringify({ roundId: 1042, timer: { timeLeft: 41_500, totalDuration: 60_000, percentage: 30.83 }, currentScreen: "game_screen", serverTime: 1_764_000_000_000 });

const log = pino({ level: "warn" });
const noMetrics: BrokerMetrics = {
  redisConnectionChanged: () => undefined,
  redisMessageReceived: () => undefined,
  redisMessageDropped: () => undefined,
  redisCommandFailed: () => undefined,
  redisResubscribed: () => undefined,
};

interface Pod {
  readonly broker: RedisBroker;
  delivered: number;
}

async function startPod(url: string): Promise<Pod> {
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const pod: { broker: RedisBroker | null; delivered: number } = { broker: null, delivered: 0 };
  pod.broker = RedisBroker.start({
    redis: redisConnections({ kind: "standalone", url }, log),
    waitReplicas: 0,
    // The gateway's defaults: every publish also appends to its channel's history.
    policy: { keyspace: new RedisKeyspace(PREFIX), channelStateTtlSeconds: 86_400, history: HistoryPolicy.parse(DEFAULT_CHANNEL_HISTORY), idempotencyWindowMs: 300_000 },
    metrics: noMetrics,
    log,
    handler: {
      onDelivery: () => void pod.delivered++,
      onReadyChange: (isReady) => {
        if (isReady) markReady();
      },
    },
  });
  await ready;
  return pod as Pod;
}

async function info(admin: Redis, section: string): Promise<Map<string, string>> {
  const fields = new Map<string, string>();
  for (const line of (await admin.info(section)).split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0) fields.set(line.slice(0, at), line.slice(at + 1));
  }
  return fields;
}

async function usedMemory(admin: Redis): Promise<number> {
  return Number((await info(admin, "memory")).get("used_memory"));
}

async function redisCpuSeconds(admin: Redis): Promise<number> {
  const cpu = await info(admin, "cpu");
  return Number(cpu.get("used_cpu_user")) + Number(cpu.get("used_cpu_sys"));
}

/** Microseconds per call of the publish script, from INFO commandstats. */
async function evalUsecPerCall(admin: Redis): Promise<number> {
  const stats = await info(admin, "commandstats");
  const line = stats.get("cmdstat_evalsha") ?? stats.get("cmdstat_eval") ?? "";
  return Number(/usec_per_call=([\d.]+)/.exec(line)?.[1]);
}

/** Runs `count` publishes, at most IN_FLIGHT at once; resolves with the elapsed seconds. */
async function publishAll(publisher: RedisBroker, count: number, publication: (index: number) => Publication): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < count) {
        const index = next++;
        await publisher.publish([publication(index)]);
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

/** Waits until every pod has `expected` deliveries, for at most 30 s. */
async function allDelivered(pods: readonly Pod[], expected: (pod: Pod, index: number) => number): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (pods.every((pod, index) => pod.delivered >= expected(pod, index))) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

function kb(bytes: number): string {
  return `${(bytes / 1000).toFixed(0)} KB`;
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const admin = new Redis(redis.url);
  const rows: string[] = [];
  try {
    // 1. Personal channels: USERS channels spread over USER_PODS pods.
    const userPods = await Promise.all(Array.from({ length: USER_PODS }, () => startPod(redis.url)));
    const publisherPod = await startPod(redis.url);
    const beforeSubscribe = await usedMemory(admin);
    let started = performance.now();
    for (const [podIndex, pod] of userPods.entries()) {
      for (let first = podIndex; first < USERS; first += 1000 * USER_PODS) {
        const chunk: Array<Promise<void>> = [];
        for (let user = first; user < Math.min(USERS, first + 1000 * USER_PODS); user += USER_PODS) chunk.push(pod.broker.subscribe(`user:u${user}`));
        await Promise.all(chunk);
      }
    }
    const subscribeSeconds = (performance.now() - started) / 1000;
    const afterSubscribe = await usedMemory(admin);
    const perSubscription = (afterSubscribe - beforeSubscribe) / USERS;
    rows.push(`| ${USERS.toLocaleString("en-US")} personal channels subscribed (over ${USER_PODS} pods) | ${perSubscription.toFixed(0)} B of Redis memory each (${kb(afterSubscribe - beforeSubscribe)} in all); ${Math.round(USERS / subscribeSeconds).toLocaleString("en-US")} SUBSCRIBE/s |`);

    // 2. One publish to each personal channel: creates its state hash, delivered to one pod.
    await admin.config("RESETSTAT");
    let cpuBefore = await redisCpuSeconds(admin);
    const personalSeconds = await publishAll(publisherPod.broker, USERS, (index) => ({
      channel: `user:u${index}`,
      frameHead: encodeFrameHead(`user:u${index}`, "portfolio_update", '{"cash":100}'),
      ts: Date.now(),
    }));
    const personalCpu = (await redisCpuSeconds(admin)) - cpuBefore;
    const personalDelivered = await allDelivered(userPods, (_, index) => Math.ceil((USERS - index) / USER_PODS));
    const afterState = await usedMemory(admin);
    const perState = (afterState - afterSubscribe) / USERS;
    rows.push(
      `| ${USERS.toLocaleString("en-US")} publishes, one to each personal channel | ${perState.toFixed(0)} B of Redis memory per channel state; script ${(await evalUsecPerCall(admin)).toFixed(1)} µs/call in Redis, ${((personalCpu * 1e6) / USERS).toFixed(1)} µs of Redis CPU per publish; ${Math.round(USERS / personalSeconds).toLocaleString("en-US")} publishes/s from one client; ${personalDelivered ? "all delivered" : "NOT all delivered"} |`,
    );

    // 3. Broadcasts to `race` as more pods subscribe to it.
    for (const podCount of POD_COUNTS) {
      const pods = await Promise.all(Array.from({ length: podCount }, () => startPod(redis.url)));
      await Promise.all(pods.map((pod) => pod.broker.subscribe("race")));
      await admin.config("RESETSTAT");
      cpuBefore = await redisCpuSeconds(admin);
      started = performance.now();
      const seconds = await publishAll(publisherPod.broker, MESSAGES, () => ({ channel: "race", frameHead: encodeFrameHead("race", "timer_update", RACE_DATA), ts: Date.now() }));
      const cpu = (await redisCpuSeconds(admin)) - cpuBefore;
      const delivered = await allDelivered(pods, () => MESSAGES);
      rows.push(
        `| ${MESSAGES.toLocaleString("en-US")} broadcasts to \`race\`, ${podCount} subscribing pod${podCount === 1 ? "" : "s"} | script ${(await evalUsecPerCall(admin)).toFixed(1)} µs/call in Redis, ${((cpu * 1e6) / MESSAGES).toFixed(1)} µs of Redis CPU per broadcast; ${Math.round(MESSAGES / seconds).toLocaleString("en-US")} publishes/s from one client; ${delivered ? "all delivered" : "NOT all delivered"} |`,
      );
      await Promise.all(pods.map((pod) => pod.broker.close()));
    }

    await Promise.all([...userPods, publisherPod].map((pod) => pod.broker.close()));
    const server = await info(admin, "server");
    process.stdout.write(`\nRedis ${server.get("redis_version") ?? "?"}, ${new Date().toISOString()}, Node ${process.version}\n\n`);
    process.stdout.write("| workload | Redis cost |\n|---|---|\n");
    process.stdout.write(`${rows.join("\n")}\n`);
  } finally {
    admin.disconnect();
    await redis.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:redis failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
