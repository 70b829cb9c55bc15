// Per-user multi-device: USERS users × DEVICES sockets each (default 10). Every
// socket joins its personal channel `user:<sub>` at connect; a publisher makes
// exactly RATE × DURATION publishes, message i (seq i) going to user i % USERS,
// and every one of that user's devices must receive it. Latency from the
// frame's `ts`.
//
//   k6 run -e USERS=200 -e DEVICES=10 -e DURATION=60s loadtest/k6/multi-device.js
//
// With TOKENS_FILE, token k must carry sub `<RUN_ID>-user-<k>` (one per user).

import exec from 'k6/execution';
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { WebSocket } from './lib/websocket.js';
import {
  BASE_URL,
  DeliveryTally,
  PUBLISH_HEADERS,
  RUN_ID,
  WS_URL,
  awaitPublishSlot,
  latencyOf,
  publishCount,
  publisherScenario,
  receiveDeadlineMs,
  scoreOnce,
  tokenFor,
} from './lib/common.js';

const USERS = Number(__ENV.USERS || 100);
const DEVICES = Number(__ENV.DEVICES || 10);
const DURATION = __ENV.DURATION || '60s';
const WARMUP_S = Number(__ENV.WARMUP_S || 20);
const RATE = Number(__ENV.RATE || 20); // personal publishes per second, spread over the users
const PUBLISHES = publishCount(RATE, DURATION);

const latency = new Trend('gw_personal_latency_ms', true);
const received = new Counter('gw_personal_received');
const published = new Counter('gw_personal_published');
// One sample per (message, device of its user): true when it arrived.
const delivered = new Rate('gw_personal_delivered');
// Deliveries a device was not owed: a repeat, or a message for another user.
const strays = new Counter('gw_personal_stray_deliveries');

export const options = {
  scenarios: {
    devices: {
      executor: 'per-vu-iterations',
      vus: USERS * DEVICES,
      iterations: 1,
      maxDuration: `${receiveDeadlineMs(WARMUP_S, DURATION) / 1000 + 30}s`,
      exec: 'device',
    },
    publisher: publisherScenario(PUBLISHES, WARMUP_S, DURATION, 5),
  },
  thresholds: {
    gw_personal_latency_ms: ['p(95)<250'],
    gw_personal_delivered: ['rate>0.999'],
    gw_personal_published: [`count==${PUBLISHES}`],
    gw_personal_stray_deliveries: ['count<1'],
    'checks{kind:publish}': ['rate>0.999'],
  },
};

const subOf = (userIndex) => `${RUN_ID}-user-${userIndex}`;

/** The seqs user `userIndex` is owed: i in 0 … PUBLISHES-1 with i % USERS === userIndex. */
function seqsOwedTo(userIndex) {
  const seqs = [];
  for (let i = userIndex; i < PUBLISHES; i += USERS) seqs.push(i);
  return seqs;
}

export function publish() {
  const seq = awaitPublishSlot(RATE);
  const channel = `user:${subOf(seq % USERS)}`;
  const res = http.post(`${BASE_URL}/v1/publish`, JSON.stringify({ channel, event: 'portfolio_update', data: { run: RUN_ID, seq, cash: 1000 + seq } }), PUBLISH_HEADERS);
  if (check(res, { 'publish 200': (r) => r.status === 200 }, { kind: 'publish' })) published.add(1);
}

// Device d (0 … USERS × DEVICES - 1) belongs to user floor(d / DEVICES). d is the
// iteration's number in this scenario (one iteration per VU), not __VU: VU ids are
// shared with the publisher scenario, so the devices' ids need not be 1 … USERS × DEVICES.
export function device() {
  const userIndex = Math.floor(exec.scenario.iterationInTest / DEVICES);
  const channel = `user:${subOf(userIndex)}`;
  const ws = new WebSocket(`${WS_URL}/ws?token=${tokenFor(subOf(userIndex), userIndex)}`);
  const tally = new DeliveryTally(seqsOwedTo(userIndex));
  // Scored once: when every owed message is in, when the socket closes, or at the deadline.
  const finish = scoreOnce(tally, ws, delivered, strays, receiveDeadlineMs(WARMUP_S, DURATION));
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    // No subscribe needed: the personal channel is joined at connect, live once welcome arrives.
    if (frame.type !== 'message' || frame.event !== 'portfolio_update') return;
    if (frame.channel !== channel || frame.data === null || typeof frame.data !== 'object' || frame.data.run !== RUN_ID) {
      strays.add(1);
      return;
    }
    latency.add(latencyOf(frame));
    received.add(1);
    tally.record(frame.data.seq);
    if (tally.complete) finish();
  };
  ws.onclose = finish;
}
