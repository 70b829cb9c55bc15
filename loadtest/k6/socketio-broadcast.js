// Broadcast latency over the gateway's Socket.IO endpoint, speaking Socket.IO's
// wire protocol over a plain k6 WebSocket (no socket.io-client in k6):
//   engine.io v4: "0{…}" open, "2"/"3" ping/pong, "4…" message
//   socket.io v5 inside it: "40{auth}" connect, "42[event,…]" event,
//   "42<id>[…]" event with ack id, "43<id>[…]" ack, "44{…}" connect_error
// The websocket transport is used directly (EIO=4&transport=websocket), as
// socket.io-client does with transports: ["websocket"].
//
// Publishing and scoring are those of broadcast-latency.js: exactly
// 2 × DURATION messages, every socket owed all of them.
//
//   k6 run -e SUBSCRIBERS=1000 -e DURATION=60s loadtest/k6/socketio-broadcast.js

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

const latency = new Trend('gw_sio_latency_ms', true);
const received = new Counter('gw_sio_received');
const published = new Counter('gw_sio_published');
const delivered = new Rate('gw_sio_delivered');
const strays = new Counter('gw_sio_stray_deliveries');
const connectErrors = new Counter('gw_sio_connect_errors');

export const options = {
  scenarios: broadcastScenarios(SUBSCRIBERS, DURATION, WARMUP_S, RATE),
  thresholds: {
    gw_sio_latency_ms: ['p(95)<250'],
    gw_sio_delivered: ['rate>0.999'],
    gw_sio_published: [`count==${PUBLISHES}`],
    gw_sio_stray_deliveries: ['count<1'],
    gw_sio_connect_errors: ['count<1'],
    'checks{kind:publish}': ['rate>0.999'],
  },
};

export function publish() {
  const seq = awaitPublishSlot(RATE) + 1;
  const res = http.post(`${BASE_URL}/v1/publish`, JSON.stringify({ channel: 'forecasts', event: 'timer_update', data: timerUpdate(seq) }), PUBLISH_HEADERS);
  if (check(res, { 'publish 200': (r) => r.status === 200 }, { kind: 'publish' })) published.add(1);
}

export function subscriber() {
  const token = tokenFor(`${RUN_ID}-${__VU}`);
  // The gateway verifies the token at the engine.io handshake; anonymous handshakes get 401.
  const ws = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`, null, { headers: { Authorization: `Bearer ${token}` } });
  const tally = new DeliveryTally(broadcastSeqs(PUBLISHES));
  // Scored once: when every owed message is in, when the socket closes, or at the deadline.
  const finish = scoreOnce(tally, ws, delivered, strays, receiveDeadlineMs(WARMUP_S, DURATION));
  ws.onmessage = (event) => {
    const packet = event.data;
    if (packet === '2') {
      ws.send('3'); // the server pings, the client must answer within pingTimeout
    } else if (packet.startsWith('0')) {
      ws.send('40'); // connect to the "/" namespace as the handshake's user
    } else if (packet.startsWith('44')) {
      connectErrors.add(1);
      finish();
    } else if (packet.startsWith('42')) {
      const [name, body] = JSON.parse(packet.slice(2));
      if (name === 'welcome') ws.send(`421${JSON.stringify(['subscribe', { channel: 'forecasts' }])}`);
      else if (name === 'message' && isOurs(body)) {
        latency.add(latencyOf(body));
        received.add(1);
        tally.record(body.data.seq);
        if (tally.complete) finish();
      }
    } else if (packet.startsWith('431')) {
      const [answer] = JSON.parse(packet.slice(3));
      check(answer, { 'subscribed to forecasts': (a) => a.ok === true }, { kind: 'subscribe' });
    }
  };
  ws.onclose = finish;
}
