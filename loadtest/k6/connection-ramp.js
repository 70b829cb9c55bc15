// Connection ramp: VUs open one authenticated raw socket each and hold it,
// ramping to TARGET sockets. Measures handshake time, welcome time and
// whether sockets stay open; every socket subscribes to `race` like a screen.
//
//   k6 run -e TARGET=5000 -e RAMP=60s -e HOLD=120s loadtest/k6/connection-ramp.js
//
// One k6 process needs one descriptor per socket: raise `ulimit -n` (or run
// several k6 instances / k6 cloud) for more than ~19k on our build machines.

import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import { WebSocket } from './lib/websocket.js';
import { RUN_ID, WS_URL, parseSeconds, tokenFor } from './lib/common.js';

const TARGET = Number(__ENV.TARGET || 1000);
const RAMP = __ENV.RAMP || '60s';
const HOLD = __ENV.HOLD || '60s';
// Every socket stays open until a second after the last stage (ms from the scenario's start), then closes itself.
const CLOSE_AFTER_MS = (parseSeconds(RAMP) + parseSeconds(HOLD) + 1) * 1000;

const welcomeTime = new Trend('gw_welcome_ms', true);
const subscribeTime = new Trend('gw_subscribe_ms', true);
// Exactly one sample per socket: true once its welcome arrived, false if it
// errored, closed or was still waiting when the test ended.
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
    'checks{kind:subscribe}': ['rate>0.999'],
  },
};

export default function () {
  const started = Date.now();
  const ws = new WebSocket(`${WS_URL}/ws?token=${tokenFor(`${RUN_ID}-${__VU}`)}`);
  let outcome = null; // true once welcomed, false once failed: recorded once
  let subscribeSent = 0;
  let ending = false;
  const settle = (ok) => {
    if (outcome !== null) return;
    outcome = ok;
    connected.add(ok);
  };

  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === 'welcome') {
      welcomeTime.add(Date.now() - started);
      settle(true);
      subscribeSent = Date.now();
      ws.send(JSON.stringify({ type: 'subscribe', id: 1, channel: 'race' }));
    } else if (frame.type === 'reply' && frame.id === 1) {
      check(frame, { 'subscribed to race': (f) => f.ok === true }, { kind: 'subscribe' });
      subscribeTime.add(Date.now() - subscribeSent);
    }
  };
  ws.onerror = () => settle(false);
  ws.onclose = () => {
    settle(false);
    if (!ending) unexpectedCloses.add(1);
  };
  // A VU started late in the ramp holds its socket for a shorter time; all close together.
  setTimeout(() => {
    ending = true;
    settle(false);
    ws.close();
  }, Math.max(1000, exec.scenario.startTime + CLOSE_AFTER_MS - Date.now()));
}
