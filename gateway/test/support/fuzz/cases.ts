/**
 * Generated inputs for the fuzz suite, one arbitrary per surface: `/ws`
 * frames, Socket.IO events and raw engine.io packets, publish bodies and
 * ingest entries. Requests are built as text around the protocol's shapes,
 * so most of them reach the checks behind the JSON parser instead of dying
 * in it.
 */

import fc from "fast-check";
import { deepText, hostileString, HOSTILE_KEYS, jsonText, mutated, nestedText, NUMBER_LITERALS, stringLiteral } from "./json-text.js";

/** Channels the bystanders watch: every publish the fuzz gets accepted there must reach them. */
export const PUBLISH_CHANNELS = ["forecasts:fz", "fuzz:a", "fuzz:b"] as const;
export const INGEST_CHANNEL = "fuzz:ingest";
export const BEAT_CHANNEL = "fuzz:beat";
/** What fuzz connections' tokens grant besides the public channels. */
export const FUZZ_GRANTS = ["fuzz:*", "vip"] as const;

const CHANNEL_NAMES = [
  ...PUBLISH_CHANNELS,
  INGEST_CHANNEL,
  "race",
  "forecasts",
  "forecasts:",
  "vip",
  "vip2",
  "fuzz:",
  "fuzz:x:y",
  "odds:7",
  "user:someone-else",
  "user:",
  "a".repeat(128),
  "a".repeat(129),
  "",
  "has space",
  "é",
  "fuzz:\u0000",
] as const;

/** A channel as JSON text: mostly names, sometimes not a string at all. */
const channelText = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...CHANNEL_NAMES).map(stringLiteral) }, { weight: 1, arbitrary: hostileString.map(stringLiteral) }, { weight: 1, arbitrary: jsonText });

const positionText = fc.oneof(
  { weight: 3, arbitrary: fc.record({ offset: fc.oneof(fc.nat(), fc.constantFrom(...NUMBER_LITERALS)), epoch: fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{0,8}$/).map(stringLiteral), fc.constantFrom('"a b"', "7", "null", stringLiteral("e".repeat(65)))) }).map(({ offset, epoch }) => `{"offset":${offset},"epoch":${epoch}}`) },
  { weight: 1, arbitrary: jsonText },
);

/** Refresh tokens: garbage, or those the test mints (`minted` placeholders, replaced by the suite). */
export const MINTED_TOKENS = ["#OTHER_USER#", "#OLDER#", "#EXPIRED#"] as const;
const tokenText = fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...MINTED_TOKENS).map(stringLiteral) }, { weight: 2, arbitrary: hostileString.map(stringLiteral) }, { weight: 1, arbitrary: jsonText });

const commandNameText = fc.oneof(fc.constantFrom("place_bet", "x", "a".repeat(64), "a".repeat(65), "").map(stringLiteral), hostileString.map(stringLiteral), jsonText);

const optional = (key: string, value: fc.Arbitrary<string>, weight = 4): fc.Arbitrary<string[]> => fc.oneof({ weight, arbitrary: value.map((text) => [`"${key}":${text}`]) }, { weight: 1, arbitrary: fc.constant<string[]>([]) });

const TYPES = ["subscribe", "unsubscribe", "refresh", "ping", "command"] as const;

/** The fields of a request of `type` (or of any type), as `"key":value` texts; `deep` nests a command's data. */
function fieldsOf(type: string, deep: fc.Arbitrary<string>): fc.Arbitrary<string[]> {
  switch (type) {
    case "subscribe":
      return fc.tuple(optional("channel", channelText, 12), optional("since", positionText, 1)).map(([a, b]) => [...a, ...b]);
    case "unsubscribe":
      return optional("channel", channelText, 12);
    case "refresh":
      return optional("token", tokenText, 8);
    case "command":
      return fc.tuple(optional("name", commandNameText, 8), optional("data", fc.oneof({ weight: 4, arbitrary: jsonText }, { weight: 1, arbitrary: deep }), 6)).map(([a, b]) => [...a, ...b]);
    default:
      return fc.constant([]);
  }
}

/** Fields no request lists, hostile keys among them (never `id`, which replies are matched by). */
const extraFields = fc.array(
  fc.tuple(
    fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.constantFrom(...HOSTILE_KEYS.filter((key) => key !== "id")),
    ),
    jsonText,
  ),
  { maxLength: 3 },
).map((pairs) => pairs.map(([key, value]) => `${stringLiteral(key)}:${value}`));

/** A request's type (name) and its fields as the text of one JSON object. */
function requestTextWith(deep: fc.Arbitrary<string>): fc.Arbitrary<{ readonly type: string; readonly fields: string }> {
  return fc
    .tuple(fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...TYPES) }, { weight: 1, arbitrary: hostileString }, { weight: 1, arbitrary: fc.constantFrom("toString", "__proto__", "constructor", "Ping", "error") }), extraFields)
    .chain(([type, extra]) => fieldsOf(type, deep).map((fields) => ({ type, fields: `{${[...fields, ...extra].join(",")}}` })));
}

export const requestText = requestTextWith(deepText);

/** Socket.IO clients walk payloads recursively (socket.io-client's hasBinary): a few hundred levels, not thousands. */
const shallowDeepText = fc.tuple(fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 28, max: 40 }) }, { weight: 1, arbitrary: fc.integer({ min: 100, max: 300 }) }), fc.boolean()).map(([levels, asArray]) => nestedText(levels, asArray ? "array" : "object"));

/** Where a `/ws` frame's id comes from; ids that replies can be matched by are assigned per batch. */
export type IdKind = "unique" | "zero" | "max" | { readonly text: string };

const idKind: fc.Arbitrary<IdKind> = fc.oneof(
  { weight: 16, arbitrary: fc.constant("unique" as const) },
  { weight: 1, arbitrary: fc.constantFrom("zero" as const, "max" as const) },
  { weight: 2, arbitrary: fc.constantFrom("-1", "1.5", '"7"', "null", "1e400", "9007199254740992", "[1]", "true").map((text) => ({ text })) },
  { weight: 1, arbitrary: fc.constant({ text: "" }) },
);

/** A `/ws` frame before its id is assigned: `#ID#` in `text` stands for it. */
export type FrameTemplate = { readonly binary: false; readonly text: string; readonly id: IdKind } | { readonly binary: true; readonly bytes: Uint8Array };

const TYPE_VALUE = fc.oneof({ weight: 10, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom("7", "null", "[]", '{"a":1}') });

const requestFrame: fc.Arbitrary<FrameTemplate> = fc.tuple(requestText, idKind, TYPE_VALUE).map(([request, id, typeValue]) => {
  const body = request.fields.slice(1, -1);
  const type = typeValue ?? stringLiteral(request.type);
  const idPart = typeof id === "object" ? (id.text === "" ? "" : `"id":${id.text},`) : `"id":#ID#,`;
  return { binary: false, text: `{"type":${type},${idPart}${body}`.replace(/,$/, "") + "}", id };
});

/** Frames that stay under MAX_FRAME_BYTES (16 KiB) once their id is in; the closing ones are generated apart. */
const FRAME_BYTES_BUDGET = 15_000;

export const wsFrame: fc.Arbitrary<FrameTemplate> = fc.oneof(
  { weight: 16, arbitrary: requestFrame },
  { weight: 2, arbitrary: mutated(requestFrame.map((frame) => (frame.binary ? "" : frame.text))).map((text): FrameTemplate => ({ binary: false, text, id: "unique" })) },
  { weight: 1, arbitrary: jsonText.map((text): FrameTemplate => ({ binary: false, text, id: "unique" })) },
  { weight: 1, arbitrary: hostileString.map((text): FrameTemplate => ({ binary: false, text, id: "unique" })) },
  { weight: 1, arbitrary: deepText.map((data): FrameTemplate => ({ binary: false, text: `{"type":"command","id":#ID#,"name":"place_bet","data":${data}}`, id: "unique" })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes): FrameTemplate => ({ binary: true, bytes })) },
).filter((frame) => frame.binary || Buffer.byteLength(frame.text) <= FRAME_BYTES_BUDGET);

/** Frames that end the connection: oversized (1009, or cut past 4x), or text that is not UTF-8. */
export const closingFrame: fc.Arbitrary<{ readonly data: Buffer; readonly binary: boolean }> = fc.oneof(
  fc.tuple(fc.integer({ min: 16_385, max: 70_000 }), fc.boolean()).map(([size, binary]) => ({ data: Buffer.alloc(size, 0x20), binary })),
  fc.tuple(fc.string({ maxLength: 20 }), fc.constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82])).map(([text, bad]) => ({ data: Buffer.concat([Buffer.from(`{"type":"ping","id":1,"x":"${text}`), Buffer.from(bad), Buffer.from('"}')]), binary: false })),
);

/** socket.io-client refuses to emit these names itself. */
const CLIENT_RESERVED = new Set(["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]);

/** A Socket.IO event: its name and arguments (JSON values, or binary attachments). */
export interface EventCase {
  readonly name: string;
  readonly args: readonly unknown[];
}

const binaryArg = fc.oneof(
  fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes)),
  fc.uint8Array({ maxLength: 16 }).map((bytes) => ({ channel: "race", blob: Buffer.from(bytes) })),
  fc.uint8Array({ maxLength: 16 }).map((bytes) => ({ name: "place_bet", data: { nested: [Buffer.from(bytes)] } })),
);

/** JSON text parsed the way the server will see it after socket.io-client has JSON-encoded it (1e400 becomes null). */
function asSent(text: string): unknown {
  return JSON.parse(JSON.stringify(JSON.parse(text)));
}

const sioDeep = shallowDeepText.map((data) => ({ name: "place_bet", data: JSON.parse(data) as unknown }));

export const socketIoEvent: fc.Arbitrary<EventCase> = fc
  .tuple(
    requestTextWith(shallowDeepText).filter((request) => !CLIENT_RESERVED.has(request.type)),
    fc.oneof(
      { weight: 10, arbitrary: fc.constant("fields" as const) },
      { weight: 2, arbitrary: fc.constant("none" as const) },
      { weight: 1, arbitrary: fc.constant("two" as const) },
      { weight: 2, arbitrary: fc.constant("random" as const) },
      { weight: 1, arbitrary: fc.constant("binary" as const) },
      { weight: 1, arbitrary: fc.constant("deep" as const) },
    ),
    jsonText,
    binaryArg,
    sioDeep,
  )
  .map(([request, shape, random, binary, deep]) => {
    const fields = (): unknown => asSent(request.fields);
    switch (shape) {
      case "fields":
        return { name: request.type, args: [fields()] };
      case "none":
        return { name: request.type, args: [] };
      case "two":
        return { name: request.type, args: [fields(), asSent(random)] };
      case "random":
        return { name: request.type, args: [asSent(random)] };
      case "binary":
        return { name: request.type, args: [binary] };
      case "deep":
        return { name: "command", args: [deep] };
    }
  })
  // Past MAX_FRAME_BYTES (engine.io's maxHttpBufferSize) the session is cut: that is not what this case is about.
  .filter((event) => Buffer.byteLength(JSON.stringify([event.name, ...event.args], (_key, value: unknown) => (Buffer.isBuffer(value) ? null : value))) <= FRAME_BYTES_BUDGET);

/** Names socket.io-parser refuses as event names: the session ends. */
export const PARSER_RESERVED = ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"] as const;

/** A raw engine.io packet on an open Socket.IO session; `#ACK#` stands for an acknowledgement id. */
export type PacketCase = { readonly kind: "event"; readonly name: string | number; readonly args: readonly unknown[] } | { readonly kind: "reserved"; readonly name: string } | { readonly kind: "raw"; readonly text: string } | { readonly kind: "binary"; readonly bytes: Uint8Array };

export const enginePacket: fc.Arbitrary<PacketCase> = fc.oneof(
  { weight: 6, arbitrary: socketIoEvent.filter((event) => !event.args.some((arg) => JSON.stringify(arg) === undefined || hasBuffer(arg))).map((event): PacketCase => ({ kind: "event", name: event.name, args: event.args })) },
  { weight: 1, arbitrary: fc.tuple(fc.oneof(fc.integer(), fc.constantFrom(0, -1, 1.5)), jsonText).map(([name, arg]): PacketCase => ({ kind: "event", name, args: [asSent(arg)] })) },
  { weight: 1, arbitrary: fc.constantFrom(...PARSER_RESERVED).map((name): PacketCase => ({ kind: "reserved", name })) },
  {
    weight: 3,
    arbitrary: fc
      .oneof(
        mutated(requestText.map((request) => `42#ACK#[${stringLiteral(request.type)},${request.fields}]`)),
        fc.constantFrom("4", "42", "42[", "42[]", "42{}", '42"x"', "43[1]", "439[1]", "41", "40", "44", "45", "46", "47", "4x", "9", "0", "1", "2", "3", "5", "6", "2probe", "", "42-1[\"ping\"]", "421e3[\"ping\"]", '42/x,["ping"]', '42/other,1["ping"]', '451-["ping",{"_placeholder":true,"num":0}]'),
        hostileString,
      )
      .map((text): PacketCase => ({ kind: "raw", text })),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 32 }).map((bytes): PacketCase => ({ kind: "binary", bytes })) },
);

function hasBuffer(value: unknown): boolean {
  if (Buffer.isBuffer(value)) return true;
  if (typeof value !== "object" || value === null) return false;
  return Object.values(value).some(hasBuffer);
}

/** A publish request: the body's bytes and whether it carries the right key. */
export interface PublishCase {
  readonly body: Buffer;
  readonly key: "right" | "wrong" | "none";
}

const publishChannel = fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...PUBLISH_CHANNELS).map(stringLiteral) }, { weight: 2, arbitrary: fc.constantFrom("forecasts:elsewhere", "odds:7|x=+/@.", "race", "has space", "", "a".repeat(129)).map(stringLiteral) }, { weight: 1, arbitrary: jsonText });
const publishEvent = fc.oneof({ weight: 10, arbitrary: fc.constantFrom("forecast_update", "e", "a.b:c-d_e", "x".repeat(64)).map(stringLiteral) }, { weight: 1, arbitrary: fc.constantFrom("", "x".repeat(65), "a/b", "é").map(stringLiteral) }, { weight: 1, arbitrary: jsonText });
const publishData = fc.oneof({ weight: 10, arbitrary: jsonText }, { weight: 1, arbitrary: deepText }, { weight: 1, arbitrary: fc.constantFrom("1e400", "[-1e400]", '{"p":1E999}') });
/** `#LANE#` is replaced by the lane that sends the request, so lanes running at once never share a key. */
export const LANE = "#LANE#";
const idempotencyKey = fc.oneof({ weight: 3, arbitrary: fc.constantFrom("k1", "k2", "k3", "k.4:@|=+/").map((key) => stringLiteral(`${key}-${LANE}`)) }, { weight: 1, arbitrary: fc.constantFrom("", "has space", "x".repeat(129), "7", "null") .map((text) => (text === "7" || text === "null" ? text : stringLiteral(text))) });

const publishMessageText = fc
  .tuple(optional("channel", publishChannel, 30), optional("event", publishEvent, 30), optional("data", publishData, 30), fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: idempotencyKey.map((key) => [`"idempotencyKey":${key}`]) }), extraFields)
  .map((parts) => `{${parts.flat().join(",")}}`);

function withBadBytes(text: string, at: number): Buffer {
  const split = text.length === 0 ? 0 : at % text.length;
  return Buffer.concat([Buffer.from(text.slice(0, split)), Buffer.from([0xff, 0xc3]), Buffer.from(text.slice(split))]);
}

export const publishCase: fc.Arbitrary<PublishCase> = fc
  .tuple(
    fc.oneof(
      { weight: 10, arbitrary: publishMessageText.map((text) => Buffer.from(text)) },
      { weight: 5, arbitrary: fc.array(publishMessageText, { maxLength: 24 }).map((messages) => Buffer.from(`{"messages":[${messages.join(",")}]}`)) },
      { weight: 1, arbitrary: jsonText.map((text) => Buffer.from(text)) },
      { weight: 1, arbitrary: mutated(publishMessageText).map((text) => Buffer.from(text)) },
      { weight: 1, arbitrary: fc.tuple(publishMessageText, fc.nat()).map(([text, at]) => withBadBytes(text, at)) },
      { weight: 1, arbitrary: fc.integer({ min: 65_000, max: 80_000 }).map((size) => Buffer.from(`{"channel":"fuzz:a","event":"big","data":"${"x".repeat(size)}"}`)) },
    ),
    fc.oneof({ weight: 30, arbitrary: fc.constant("right" as const) }, { weight: 1, arbitrary: fc.constantFrom("wrong" as const, "none" as const) }),
  )
  .map(([body, key]) => ({ body, key }));

/** An ingest stream entry: its field/value pairs in XADD order. */
export type IngestCase = ReadonlyArray<readonly [string, string | Buffer]>;

const ingestValue = (valid: fc.Arbitrary<string>): fc.Arbitrary<string | Buffer> => fc.oneof({ weight: 12, arbitrary: valid }, { weight: 1, arbitrary: hostileString }, { weight: 1, arbitrary: fc.constant(Buffer.from([0x66, 0xff])) });

export const ingestCase: fc.Arbitrary<IngestCase> = fc
  .tuple(
    fc.oneof({ weight: 12, arbitrary: fc.constant([["channel", INGEST_CHANNEL] as const]) }, { weight: 2, arbitrary: ingestValue(fc.constantFrom("forecasts:elsewhere", "race", "has space", "")).map((value) => [["channel", value] as const]) }, { weight: 1, arbitrary: fc.constant([]) }),
    fc.oneof({ weight: 12, arbitrary: ingestValue(fc.constantFrom("forecast_update", "e")).map((value) => [["event", value] as const]) }, { weight: 1, arbitrary: fc.constant([]) }),
    fc.oneof(
      { weight: 12, arbitrary: jsonText.map((text) => [["data", text] as const]) },
      { weight: 1, arbitrary: deepText.map((text) => [["data", text] as const]) },
      { weight: 1, arbitrary: fc.tuple(jsonText, fc.nat()).map(([text, at]) => [["data", withBadBytes(text, at)] as const]) },
      { weight: 1, arbitrary: mutated(jsonText).map((text) => [["data", text] as const]) },
      { weight: 1, arbitrary: fc.constantFrom("1e400", '{"a":-1e999}').map((text) => [["data", text] as const]) },
      { weight: 1, arbitrary: fc.constant([["data", `"${"x".repeat(66_000)}"`] as const]) },
      { weight: 1, arbitrary: fc.constant([]) },
    ),
    fc.array(fc.tuple(fc.constantFrom("channel", "event", "data", "extra", "idempotencyKey", "__proto__"), ingestValue(jsonText)), { maxLength: 2 }),
  )
  .map(([channel, event, data, extra]) => [...channel, ...event, ...data, ...extra])
  .filter((fields) => fields.length > 0);
