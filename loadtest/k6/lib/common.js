// Shared by the k6 scripts in this folder. k6 runs JavaScript (goja), not
// Node: only k6/* modules, no npm packages, no TypeScript.
//
// Environment (k6 run -e NAME=value …):
//   BASE_URL      http(s) base of the cluster, default http://127.0.0.1:8080 (npm start's NGINX)
//   JWT_SECRET    HS256 secret the gateway verifies, default the npm start dev secret
//   PUBLISH_KEY   bearer key for POST /v1/publish, default the npm start dev key
//   TOKENS_FILE   optional: JSON array of pre-minted tokens (RS256/ES256 clusters, where
//                 k6 cannot sign); token i goes to VU i, round robin
//   RUN_ID        prefix of every `sub` and tag of every published message (default `k6`);
//                 set it per run when several runs share a cluster. A constant, not a
//                 timestamp: k6 evaluates this file once per VU, and all must agree.

import crypto from 'k6/crypto';
import encoding from 'k6/encoding';

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

/** An HS256 JWT for `sub`, valid for `ttlSeconds`; or a pre-minted one from TOKENS_FILE. */
export function tokenFor(sub, ttlSeconds = 3600) {
  if (PREMINTED) return PREMINTED[(__VU - 1) % PREMINTED.length];
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
 * The two scenarios of every broadcast script: `subscribers` VUs each holding
 * one socket for the whole run, and a publisher at `rate` messages per second
 * that starts once the sockets had `warmupS` seconds to connect and subscribe.
 */
export function broadcastScenarios(subscribers, duration, warmupS, rate = 2) {
  return {
    subscribers: {
      executor: 'per-vu-iterations',
      vus: subscribers,
      iterations: 1,
      maxDuration: `${warmupS + parseSeconds(duration) + 30}s`,
      exec: 'subscriber',
    },
    publisher: {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration,
      startTime: `${warmupS}s`,
      preAllocatedVUs: 2,
      exec: 'publish',
    },
  };
}
