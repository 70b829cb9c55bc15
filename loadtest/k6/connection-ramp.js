// Connection ramp: VUs open one authenticated raw socket each and hold it,
// ramping to TARGET sockets. Measures handshake time, welcome time and
// whether sockets stay open; every socket subscribes to `race` like a screen.
//
//   k6 run -e TARGET=5000 -e RAMP=60s -e HOLD=120s loadtest/k6/connection-ramp.js
//
// One k6 process needs one descriptor per socket: raise `ulimit -n` (or run
// several k6 instances / k6 cloud) for more than ~19k on our build machines.

import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/websockets'; // k6 < 0.54: 'k6/experimental/websockets'
import { RUN_ID, WS_URL, tokenFor } from './lib/common.js';

const TARGET = Number(__ENV.TARGET || 1000);
const RAMP = __ENV.RAMP || '60s';
const HOLD = __ENV.HOLD || '60s';
const HOLD_MS = parseDuration(HOLD) + parseDuration(RAMP);

const welcomeTime = new Trend('gw_welcome_ms', true);
const subscribeTime = new Trend('gw_subscribe_ms', true);
const connected = new Rate('gw_connected');
const unexpectedCloses = new Counter('gw_unexpected_closes');

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: RAMP, target: TARGET },
        { duration: HOLD, target: TARGET },
      ],
      // Each VU holds its socket for the whole test; don't start new iterations on the way down.
      gracefulRampDown: '0s',
      gracefulStop: '10s',
    },
  },
  thresholds: {
    gw_connected: ['rate>0.999'],
    gw_welcome_ms: ['p(95)<1000'],
    gw_subscribe_ms: ['p(95)<250'],
    gw_unexpected_closes: ['count<1'],
  },
};

function parseDuration(text) {
  const m = /^(\d+)(ms|s|m)$/.exec(text);
  if (!m) return 60000;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000 }[m[2]];
}

export default function () {
  const started = Date.now();
  const ws = new WebSocket(`${WS_URL}/ws?token=${tokenFor(`${RUN_ID}-${__VU}`)}`);
  let subscribeSent = 0;
  let ended = false;

  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === 'welcome') {
      welcomeTime.add(Date.now() - started);
      connected.add(true);
      subscribeSent = Date.now();
      ws.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'race' }));
    } else if (frame.type === 'reply' && frame.id === 1) {
      check(frame, { 'subscribed to race': (f) => f.ok === true });
      subscribeTime.add(Date.now() - subscribeSent);
    }
  };
  ws.onerror = () => {
    if (subscribeSent === 0) connected.add(false);
  };
  ws.onclose = () => {
    if (!ended) unexpectedCloses.add(1);
  };
  // Hold until the end of the test; a VU ramped down early closes on its own.
  const remaining = Math.max(1000, HOLD_MS - (Date.now() - started) + 1000);
  setTimeout(() => {
    ended = true;
    ws.close();
  }, remaining);
}
