/**
 * The `Sec-WebSocket-Protocol` offer of a `/ws` upgrade: which protocol to
 * answer with, and the token when the client carries it there (browsers
 * cannot set `Authorization` on a WebSocket, and a token in the query string
 * ends up in access logs).
 */

import { BEARER_SUBPROTOCOL_PREFIX, WS_SUBPROTOCOL } from "../../../shared/src/protocol.js";

export type SubprotocolOffer =
  | {
      readonly ok: true;
      /** The protocol to answer with: WS_SUBPROTOCOL when offered, else "" (none). */
      readonly accept: string;
      /** The token of a `bearer.<jwt>` entry, if any. */
      readonly token: string | undefined;
    }
  | { readonly ok: false; readonly message: string };

export function readSubprotocols(header: string): SubprotocolOffer {
  const offered = header
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  const bearers = offered.filter((entry) => entry.startsWith(BEARER_SUBPROTOCOL_PREFIX));
  const accept = offered.includes(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : "";
  if (bearers.length > 1) return { ok: false, message: `offer at most one ${BEARER_SUBPROTOCOL_PREFIX}<token> subprotocol` };
  const bearer = bearers[0];
  if (bearer === undefined) return { ok: true, accept, token: undefined };
  // The answer must name a protocol the client offered; the token is never echoed.
  if (accept === "") return { ok: false, message: `offer the ${WS_SUBPROTOCOL} subprotocol with ${BEARER_SUBPROTOCOL_PREFIX}<token>` };
  const token = bearer.slice(BEARER_SUBPROTOCOL_PREFIX.length);
  return { ok: true, accept, token: token.length > 0 ? token : undefined };
}
