// Broadcast latency: SUBSCRIBERS sockets on `race`; a publisher scenario posts a
// ~200-byte timer_update twice a second. Latency = receive time − the frame's
// `ts` (publish time at the accepting node); k6 and the gateway must share a
// clock (same host, or NTP). Delivery ratio = received / (published × subscribers).
//
//   k6 run -e SUBSCRIBERS=2000 -e DURATION=60s loadtest/k6/broadcast-latency.js

import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/websockets'; // k6 < 0.54: 'k6/experimental/websockets'
import { BASE_URL, PUBLISH_HEADERS, RUN_ID, WS_URL, broadcastScenarios, isOurs, latencyOf, parseSeconds, timerUpdate, tokenFor } from './lib/common.js';

const SUBSCRIBERS = Number(__ENV.SUBSCRIBERS || 1000);
const DURATION = __ENV.DURATION || '60s';
const WARMUP_S = Number(__ENV.WARMUP_S || 20);

const latency = new Trend('gw_fanout_latency_ms', true);
const received = new Counter('gw_messages_received');
const published = new Counter('gw_messages_published');
// One sample per (message, subscriber) that should have arrived: true when it did.
const delivered = new Rate('gw_delivered');

export const options = {
  scenarios: broadcastScenarios(SUBSCRIBERS, DURATION, WARMUP_S),
  thresholds: {
    gw_fanout_latency_ms: ['p(95)<250', 'p(99)<1000'],
    gw_delivered: ['rate>0.999'],
    'checks{kind:publish}': ['rate>0.999'],
  },
};


let seq = 0;

export function publish() {
  seq++;
  const res = http.post(`${BASE_URL}/v1/publish`, JSON.stringify({ channel: 'race', event: 'timer_update', data: timerUpdate(seq) }), PUBLISH_HEADERS);
  if (check(res, { 'publish 200': (r) => r.status === 200 }, { kind: 'publish' })) published.add(1);
}

export function subscriber() {
  const ws = new WebSocket(`${WS_URL}/ws?token=${tokenFor(`${RUN_ID}-${__VU}`)}`);
  const expectedMessages = 2 * parseSeconds(DURATION);
  let count = 0;
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === 'welcome') ws.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'race' }));
    else if (frame.type === 'message' && isOurs(frame)) {
      latency.add(latencyOf(frame));
      received.add(1);
      count++;
    }
  };
  // Close after the publisher is done (plus a grace for in-flight frames) and
  // score this socket's deliveries against what was published.
  setTimeout(() => {
    const got = Math.min(count, expectedMessages);
    for (let i = 0; i < expectedMessages; i++) delivered.add(i < got);
    ws.close();
  }, (WARMUP_S + parseSeconds(DURATION) + 5) * 1000);
}
