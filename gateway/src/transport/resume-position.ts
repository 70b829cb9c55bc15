/**
 * The personal channel's resume position a client may give when it connects:
 * `?since=<offset>:<epoch>` on `/ws`, `auth.since = {offset, epoch}` on
 * Socket.IO. Subscribe requests carry theirs in the request schema.
 */

import type { ChannelPosition } from "../../../shared/src/protocol.js";

const SINCE_PATTERN = /^(\d{1,16}):([A-Za-z0-9_-]{0,64})$/;

export type ParsedSince = { readonly ok: true; readonly since: ChannelPosition | undefined } | { readonly ok: false; readonly message: string };

const MALFORMED = "since must be <offset>:<epoch>, the personal channel's position from the last welcome or message";

/** `<offset>:<epoch>` from a query parameter; absent or empty means no resume. */
export function sinceFromQuery(text: string): ParsedSince {
  if (text === "") return { ok: true, since: undefined };
  const match = SINCE_PATTERN.exec(text);
  if (match === null || !Number.isSafeInteger(Number(match[1]))) return { ok: false, message: MALFORMED };
  return { ok: true, since: { offset: Number(match[1]), epoch: match[2] ?? "" } };
}

/** `{offset, epoch}` from a Socket.IO handshake's `auth`; absent means no resume. */
export function sinceFromObject(value: unknown): ParsedSince {
  if (value === undefined || value === null) return { ok: true, since: undefined };
  if (typeof value !== "object") return { ok: false, message: MALFORMED };
  const { offset, epoch } = value as Record<string, unknown>;
  if (typeof offset !== "number" || typeof epoch !== "string") return { ok: false, message: MALFORMED };
  return sinceFromQuery(`${offset}:${epoch}`);
}
