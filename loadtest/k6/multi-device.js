// Per-user multi-device: USERS users × DEVICES sockets each (default 10). Every
// socket joins its personal channel `user:<sub>` at connect; a publisher sends
// a portfolio_update to each user in turn, and every one of that user's
// devices must receive it. Latency from the frame's `ts`.
//
//   k6 run -e USERS=200 -e DEVICES=10 -e DURATION=60s loadtest/k6/multi-device.js

import exec from 'k6/execution';
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/websockets'; // k6 < 0.54: 'k6/experimental/websockets'
import { BASE_URL, PUBLISH_HEADERS, RUN_ID, WS_URL, latencyOf, parseSeconds, tokenFor } from './lib/common.js';

const USERS = Number(__ENV.USERS || 100);
const DEVICES = Number(__ENV.DEVICES || 10);
const DURATION = __ENV.DURATION || '60s';
const WARMUP_S = Number(__ENV.WARMUP_S || 20);
const RATE = Number(__ENV.RATE || 20); // personal publishes per second, spread over the users

const latency = new Trend('gw_personal_latency_ms', true);
const received = new Counter('gw_personal_received');
const delivered = new Rate('gw_personal_delivered');

export const options = {
  scenarios: {
    devices: {
      executor: 'per-vu-iterations',
      vus: USERS * DEVICES,
      iterations: 1,
      maxDuration: `${WARMUP_S + parseSeconds(DURATION) + 30}s`,
      exec: 'device',
    },
    publisher: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      startTime: `${WARMUP_S}s`,
      preAllocatedVUs: 5,
      exec: 'publish',
    },
  },
  thresholds: {
    gw_personal_latency_ms: ['p(95)<250'],
    gw_personal_delivered: ['rate>0.999'],
    'checks{kind:publish}': ['rate>0.999'],
  },
};


// VU n is device ((n-1) % DEVICES) of user floor((n-1) / DEVICES): 10 consecutive VUs share a sub.
function userOf(vu) {
  return `${RUN_ID}-user-${Math.floor((vu - 1) / DEVICES)}`;
}

// Publisher iterations cycle through users (exec.scenario.iterationInTest), so
// each user gets floor-or-ceil(RATE × seconds / USERS) messages.

export function publish() {
  const i = exec.scenario.iterationInTest;
  const sub = `${RUN_ID}-user-${i % USERS}`;
  const res = http.post(`${BASE_URL}/v1/publish`, JSON.stringify({ channel: `user:${sub}`, event: 'portfolio_update', data: { seq: i, cash: 1000 + i } }), PUBLISH_HEADERS);
  check(res, { 'publish 200': (r) => r.status === 200 }, { kind: 'publish' });
}

export function device() {
  const sub = userOf(__VU);
  const userIndex = Math.floor((__VU - 1) / DEVICES);
  const ws = new WebSocket(`${WS_URL}/ws?token=${tokenFor(sub)}`);
  let count = 0;
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    // No subscribe needed: the personal channel is joined at connect, live once welcome arrives.
    if (frame.type === 'message' && frame.channel === `user:${sub}`) {
      latency.add(latencyOf(frame));
      received.add(1);
      count++;
    }
  };
  setTimeout(() => {
    const total = RATE * parseSeconds(DURATION);
    const expected = Math.floor(total / USERS) + (userIndex < total % USERS ? 1 : 0);
    for (let i = 0; i < expected; i++) delivered.add(i < count);
    ws.close();
  }, (WARMUP_S + parseSeconds(DURATION) + 5) * 1000);
}
