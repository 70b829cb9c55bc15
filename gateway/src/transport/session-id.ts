/**
 * Socket.IO session ids that name the node holding the session:
 * `<node>.<engine.io's own random id>`, e.g. `node-2.mSg3Hk0x4Ew2_vXbAAAB`.
 *
 * Every request of a long-polling session carries the id (`?sid=`), with or
 * without cookies, so NGINX routes it to the named node's upstream (the map
 * in scripts/lib/nginx.ts, documented in docs/socketio.md). The node name is
 * no secret (the welcome names it too); the random part stays engine.io's,
 * so an id is as hard to guess as before. A forged id naming another node
 * lands on that node, which refuses an id it never issued ("Session ID
 * unknown", HTTP 400), as it would refuse any other unknown id.
 */

/** Node names as NODE_ID allows them (gateway/src/config.ts). */
const NODE_ID = /^[A-Za-z0-9_.-]{1,64}$/;
/** engine.io's ids: base64url, so never a `.`; the last `.` of a session id ends the node name. */
const RANDOM_PART = /^[A-Za-z0-9_-]+$/;

/** `<node>.<random>`. Throws when either part could make the id ambiguous. */
export function sessionIdFor(nodeId: string, random: string): string {
  if (!NODE_ID.test(nodeId)) throw new Error(`node id "${nodeId}" cannot name a session`);
  if (!RANDOM_PART.test(random)) throw new Error("engine.io returned a session id outside base64url; the node could no longer be read from it");
  return `${nodeId}.${random}`;
}
