/**
 * Every request a client may send, once, as a schema: the gateway validates
 * against it (gateway/src/transport/request-parser.ts), the SDK and the tests
 * take their types from it, and docs/protocol.schema.json is emitted from it
 * (`npm run schema`; a test fails while the committed file differs).
 *
 * A request is a type plus fields. On `/ws` it is one frame,
 * `{"type":…,"id":…,…fields}`, whose reply repeats the id. On Socket.IO the
 * type is the event name, the fields are its payload, and the
 * acknowledgement stands in for the id.
 *
 * Fields a request does not list are ignored, never refused: a client may
 * send a field before the server acts on it. Adding a field or a request is one edit to REQUEST_FIELDS.
 *
 * Browser code imports only types from here: the values pull in the schema
 * library, which the SDK bundle goes without.
 */

import Type, { type Static } from "typebox";
import type { JsonValue } from "./json.js";

/** Longest command `name`; longer ones are refused before any router sees them. */
export const MAX_COMMAND_NAME_LENGTH = 64;

/** A `/ws` request id: any integer a JavaScript number holds exactly. */
export const RequestId = Type.Integer({
  minimum: 0,
  maximum: Number.MAX_SAFE_INTEGER,
  description: "Chosen by the client, unique among its pending requests; the reply repeats it.",
});

const Channel = Type.String({
  description: "A channel name. Names that are not 1-128 characters of A-Z a-z 0-9 _ - . : @ | = + / are answered with invalid_channel.",
});

/** Where a client stands on a channel: the last message it processed. */
export const Position = Type.Object(
  {
    offset: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: "Offset of the last message processed on the channel (0: none yet)." }),
    epoch: Type.String({ maxLength: 64, pattern: "^[A-Za-z0-9_-]*$", description: "The epoch that offset belongs to." }),
  },
  { description: "A channel position, as every message, subscribe reply and welcome carries it." },
);

const AnyJson = Type.Unsafe<JsonValue>({ description: "Any JSON value (null included), nested at most MAX_JSON_DEPTH levels (default 32)." });

/** Each request's fields, by type. */
export const REQUEST_FIELDS = {
  subscribe: Type.Object(
    {
      channel: Channel,
      since: Type.Optional(Position),
    },
    {
      description:
        "Start receiving a channel. With `since`, every message after that position is replayed before live ones (`recovered: true`), or the reply says `recovered: false`. The reply carries the channel's position and, for `race`, `snapshot`.",
    },
  ),
  unsubscribe: Type.Object({ channel: Channel }, { description: "Stop receiving a channel." }),
  refresh: Type.Object(
    { token: Type.String({ minLength: 1, description: "A fresh JWT for the same `sub`." }) },
    { description: "Swap the connection's token without reconnecting; moves its expiry." },
  ),
  ping: Type.Object({}, { description: "Ask for the server's clock." }),
  presence: Type.Object(
    {
      channel: Channel,
      stats: Type.Optional(Type.Boolean({ description: "true: only the numbers of users and connections, no member list." })),
    },
    {
      description:
        "Who is on a channel the connection is subscribed to, across the cluster: users with their connection counts (at most PRESENCE_MAX_MEMBERS, then `truncated: true`), or with `stats` only the numbers. Only for namespaces in PRESENCE_NAMESPACES (else presence_disabled).",
    },
  ),
  command: Type.Object(
    {
      name: Type.String({ minLength: 1, maxLength: MAX_COMMAND_NAME_LENGTH, description: "The command, e.g. place_bet." }),
      data: AnyJson,
    },
    { description: "Run a server command for the token's user; answered once its effect is committed." },
  ),
};

export type RequestType = keyof typeof REQUEST_FIELDS;

export const REQUEST_TYPES = Object.keys(REQUEST_FIELDS) as RequestType[];

/** The fields of one request type: a Socket.IO event's payload. */
export type RequestFields<T extends RequestType> = Static<(typeof REQUEST_FIELDS)[T]>;

/** A request as the server acts on it, whichever transport carried it. */
export type ClientRequest = { [T in RequestType]: { readonly type: T } & RequestFields<T> }[RequestType];

export type RequestOf<T extends RequestType> = Extract<ClientRequest, { readonly type: T }>;

/** A request on `/ws`: one frame, with the id its reply repeats. */
export type FrameOf<T extends RequestType> = RequestOf<T> & { readonly id: number };

/**
 * The requests as one JSON Schema (draft 2020-12) document: `oneOf` a `/ws`
 * frame; `$defs.<type>` the fields alone, i.e. the Socket.IO payload of the
 * event of that name.
 */
export function requestsJsonSchema(): Record<string, unknown> {
  const defs: Record<string, unknown> = {};
  for (const type of REQUEST_TYPES) {
    defs[type] = REQUEST_FIELDS[type];
    defs[`${type}_frame`] = {
      description: `A ${type} request on /ws.`,
      type: "object",
      required: ["type", "id"],
      properties: { type: { const: type }, id: RequestId },
      allOf: [{ $ref: `#/$defs/${type}` }],
    };
  }
  // Through JSON: the schema library's objects carry more than their JSON Schema.
  return JSON.parse(
    JSON.stringify({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: "protocol.schema.json",
      title: "Gateway client requests",
      description:
        "Generated from shared/src/requests.ts by `npm run schema`; do not edit. A /ws frame is one of oneOf. A Socket.IO event named <type> carries $defs/<type> as its payload and is answered by acknowledgement. Fields not listed are ignored. See docs/protocol.md.",
      oneOf: REQUEST_TYPES.map((type) => ({ $ref: `#/$defs/${type}_frame` })),
      $defs: defs,
    }),
  ) as Record<string, unknown>;
}
