// Broadcast latency: SUBSCRIBERS sockets on `forecasts` (`race` is the round
// clock's own: the publish API refuses it); a publisher scenario posts
// a ~200-byte timer_update twice a second for DURATION, exactly 2 × DURATION
// messages (seq 1 … N). Latency = receive time − the frame's `ts` (publish time
// at the accepting node); k6 and the gateway must share a clock (same host, or
// NTP). Every socket is owed all N messages: gw_delivered gets one sample per
// (message, socket), true when it arrived.
//
//   k6 run -e SUBSCRIBERS=2000 -e DURATION=60s loadtest/k6/broadcast-latency.js

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
  broadcastScenarios,
  broadcastSeqs,
  isOurs,
  latencyOf,
  publishCount,
  receiveDeadlineMs,
  scoreOnce,
  timerUpdate,
  tokenFor,
} from './lib/common.js';

const SUBSCRIBERS = Number(__ENV.SUBSCRIBERS || 1000);
const DURATION = __ENV.DURATION || '60s';
const WARMUP_S = Number(__ENV.WARMUP_S || 20);
const RATE = 2;
const PUBLISHES = publishCount(RATE, DURATION);

const latency = new Trend('gw_fanout_latency_ms', true);
const received = new Counter('gw_messages_received');
const published = new Counter('gw_messages_published');
// One sample per (message, subscriber) that should have arrived: true when it did.
const delivered = new Rate('gw_delivered');
// Deliveries no socket was owed: a repeat, or a seq this run never published.
const strays = new Counter('gw_stray_deliveries');

export const options = {
  scenarios: broadcastScenarios(SUBSCRIBERS, DURATION, WARMUP_S, RATE),
  thresholds: {
    gw_fanout_latency_ms: ['p(95)<250', 'p(99)<1000'],
    gw_delivered: ['rate>0.999'],
    gw_messages_published: [`count==${PUBLISHES}`],
    gw_stray_deliveries: ['count<1'],
    'checks{kind:publish}': ['rate>0.999'],
  },
};

export function publish() {
  const seq = awaitPublishSlot(RATE) + 1;
  const res = http.post(`${BASE_URL}/v1/publish`, JSON.stringify({ channel: 'forecasts', event: 'timer_update', data: timerUpdate(seq) }), PUBLISH_HEADERS);
  if (check(res, { 'publish 200': (r) => r.status === 200 }, { kind: 'publish' })) published.add(1);
}

export function subscriber() {
  const ws = new WebSocket(`${WS_URL}/ws?token=${tokenFor(`${RUN_ID}-${__VU}`)}`);
  const tally = new DeliveryTally(broadcastSeqs(PUBLISHES));
  // Scored once: when every owed message is in, when the socket closes, or at the deadline.
  const finish = scoreOnce(tally, ws, delivered, strays, receiveDeadlineMs(WARMUP_S, DURATION));
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === 'welcome') ws.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'forecasts' }));
    else if (frame.type === 'reply' && frame.id === 1) check(frame, { 'subscribed to forecasts': (f) => f.ok === true }, { kind: 'subscribe' });
    else if (frame.type === 'message' && isOurs(frame)) {
      latency.add(latencyOf(frame));
      received.add(1);
      tally.record(frame.data.seq);
      if (tally.complete) finish();
    }
  };
  ws.onclose = finish;
}
