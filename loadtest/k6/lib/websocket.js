// The WebSocket class of whichever k6 runs the script. The module is
// `k6/websockets` from k6 1.6 on; k6 1.0–1.5 have it only as
// `k6/experimental/websockets`, which 1.6 and 2.x deprecate and a later
// release will drop. A static import can name only one of them, so the
// scripts import this file and require() tries the stable path first.

let websockets;
try {
  websockets = require('k6/websockets');
} catch (err) {
  // Only "unknown module" means an older k6; anything else is a real fault.
  if (!String(err).includes('unknown module')) throw err;
  websockets = require('k6/experimental/websockets');
}

export const WebSocket = websockets.WebSocket;
