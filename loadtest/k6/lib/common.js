// Shared by the k6 scripts in this folder. k6 runs JavaScript (goja), not
// Node: only k6/* modules, no npm packages, no TypeScript.
//
// Environment (k6 run -e NAME=value …):
//   BASE_URL      http(s) base of the cluster, default http://127.0.0.1:8080 (npm start's NGINX)
//   JWT_SECRET    HS256 secret the gateway verifies, default the npm start dev secret
//   PUBLISH_KEY   bearer key for POST /v1/publish, default the npm start dev key
//   TOKENS_FILE   optional: JSON array of pre-minted tokens (RS256/ES256 clusters, where
//                 k6 cannot sign); token i goes to VU i+1 (user i in multi-device.js), round robin
//   RUN_ID        prefix of every `sub` and tag of every published message (default `k6`);
//                 set it per run when several runs share a cluster. A constant, not a
//                 timestamp: k6 evaluates this file once per VU, and all must agree.

import { sleep } from 'k6';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import exec from 'k6/execution';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const WS_URL = BASE_URL.replace(/^http/, 'ws');
export const JWT_SECRET = __ENV.JWT_SECRET || 'dev-secret-change-me';
export const PUBLISH_KEY = __ENV.PUBLISH_KEY || 'dev-publish-key-change-me';
export const RUN_ID = __ENV.RUN_ID || 'k6';

// open() works only in the init context, so the file is read once per VU at start.
const PREMINTED = __ENV.TOKENS_FILE ? JSON.parse(open(__ENV.TOKENS_FILE)) : null;

function b64url(text) {
  return encoding.b64encode(text, 'rawurl');
}

/** An HS256 JWT for `sub`, valid for `ttlSeconds`; or pre-minted token `index` (default: this VU's) from TOKENS_FILE. */
export function tokenFor(sub, index = __VU - 1, ttlSeconds = 3600) {
  if (PREMINTED) return PREMINTED[index % PREMINTED.length];
  const now = Math.floor(Date.now() / 1000);
  const head = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify({ sub, iat: now, exp: now + ttlSeconds }))}`;
  return `${head}.${crypto.hmac('sha256', JWT_SECRET, head, 'base64rawurl')}`;
}

/** The frame's publish time (`ts`, ms since the epoch, always the last field) → latency in ms. */
export function latencyOf(frame) {
  return Date.now() - frame.ts;
}

/** A ~200-byte timer_update like the round clock's, tagged with this run so the round clock's own ones are ignored. */
export function timerUpdate(seq) {
  return { run: RUN_ID, seq, roundId: 41, phase: 'race', remainingMs: 20000 - seq * 500, leader: 3 };
}

/** True for a delivery this run published (not the cluster's round clock). */
export function isOurs(frame) {
  return frame.event === 'timer_update' && frame.data !== null && typeof frame.data === 'object' && frame.data.run === RUN_ID;
}

export const PUBLISH_HEADERS = { headers: { Authorization: `Bearer ${PUBLISH_KEY}`, 'Content-Type': 'application/json' } };

/** '60s', '2m' or a plain number of seconds → seconds. */
export function parseSeconds(text) {
  const match = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(String(text).trim());
  if (!match) throw new Error(`cannot read duration "${text}"`);
  const scale = { s: 1, m: 60, h: 3600 }[match[2] || 's'];
  return Number(match[1]) * scale;
}

/**
 * How many messages a run publishes: `rate` a second for `duration`. It must be
 * a whole number, because every subscriber is scored against exactly this many.
 */
export function publishCount(rate, duration) {
  const count = rate * parseSeconds(duration);
  if (!Number.isInteger(count) || count < 1) throw new Error(`RATE × DURATION must be a whole number of messages, got ${rate} × ${duration}`);
  return count;
}

/** Seconds a socket waits for stragglers after the last scheduled publish before it is scored. */
export const GRACE_S = 5;

/** When a receiving socket gives up waiting and scores what it has: ms after its start. */
export function receiveDeadlineMs(warmupS, duration) {
  return (warmupS + parseSeconds(duration) + GRACE_S) * 1000;
}

/**
 * A publisher that makes exactly `count` publishes, one every 1/`rate` s from
 * `warmupS` on. An arrival-rate executor would pace them too, but its count is
 * not exact (it can start one more iteration at the end of its duration, or
 * drop some when VUs run short), and the subscribers are scored against a
 * fixed number. `vus` publishers share the iterations, so one slow request
 * does not delay the schedule.
 */
export function publisherScenario(count, warmupS, duration, vus) {
  return {
    executor: 'shared-iterations',
    vus: Math.min(vus, count),
    iterations: count,
    startTime: `${warmupS}s`,
    maxDuration: `${parseSeconds(duration) + 30}s`,
    exec: 'publish',
  };
}

/**
 * In a publisherScenario iteration: sleeps until this iteration's slot and
 * returns its index (0 … count-1, each exactly once across the publisher VUs).
 */
export function awaitPublishSlot(rate) {
  const index = exec.scenario.iterationInTest;
  const due = exec.scenario.startTime + (index * 1000) / rate;
  const wait = due - Date.now();
  if (wait > 0) sleep(wait / 1000);
  return index;
}

/**
 * The two scenarios of every broadcast script: `subscribers` VUs each holding
 * one socket for the whole run, and a publisher making rate × duration
 * publishes once the sockets had `warmupS` seconds to connect and subscribe.
 */
export function broadcastScenarios(subscribers, duration, warmupS, rate = 2) {
  return {
    subscribers: {
      executor: 'per-vu-iterations',
      vus: subscribers,
      iterations: 1,
      maxDuration: `${receiveDeadlineMs(warmupS, duration) / 1000 + 30}s`,
      exec: 'subscriber',
    },
    publisher: publisherScenario(publishCount(rate, duration), warmupS, duration, 2),
  };
}

/** 1 … count: the `seq` of every message a broadcast publisher sends, in order. */
export function broadcastSeqs(count) {
  return Array.from({ length: count }, (_, i) => i + 1);
}

/**
 * What one socket received of the messages it is owed, by sequence number:
 * each owed number counts once; a repeat, or a number it is not owed, is a stray.
 */
export class DeliveryTally {
  constructor(owed) {
    this.owed = owed.length;
    this.pending = new Set(owed);
    this.strays = 0;
  }

  /** Records one delivery; false when it was a stray. */
  record(seq) {
    if (this.pending.delete(seq)) return true;
    this.strays++;
    return false;
  }

  get complete() {
    return this.pending.size === 0;
  }

  /** One `delivered` sample per owed message (true when it arrived), and the strays. */
  score(delivered, strays) {
    const arrived = this.owed - this.pending.size;
    for (let i = 0; i < arrived; i++) delivered.add(true);
    for (let i = 0; i < this.pending.size; i++) delivered.add(false);
    if (this.strays > 0) strays.add(this.strays);
  }
}

/**
 * Scores `tally` exactly once, then closes `ws`: when every owed message is in
 * (call the returned function), when the socket closes (call it too), or at
 * `deadlineMs`, whichever comes first.
 */
export function scoreOnce(tally, ws, delivered, strays, deadlineMs) {
  let scored = false;
  const finish = () => {
    if (scored) return;
    scored = true;
    clearTimeout(deadline);
    tally.score(delivered, strays);
    ws.close();
  };
  const deadline = setTimeout(finish, deadlineMs);
  return finish;
}
