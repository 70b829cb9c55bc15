/**
 * The answers docs/protocol.md, docs/socketio.md and docs/backend-feeds.md
 * promise, written again from the documents rather than taken from the
 * gateway's code, so the fuzz suite checks the gateway against its
 * contract. Where several refusals apply to one input and the documents do
 * not rank them, any of them is accepted.
 */

import { isUtf8 } from "node:buffer";

/** The limits the fuzz nodes run with (their environment is built from this). */
export const FUZZ_LIMITS = {
  maxFrameBytes: 16_384,
  maxJsonDepth: 32,
  maxSubscriptions: 8,
  publishMaxBodyBytes: 65_536,
  publishMaxBatch: 20,
} as const;

/** `/ws`: past MAX_FRAME_BYTES a 1009 close; past 4x (at least 64 KiB) the connection is cut. */
export const WS_CUT_BYTES = Math.max(FUZZ_LIMITS.maxFrameBytes * 4, 64 * 1024);

export const REQUEST_TYPES = ["subscribe", "unsubscribe", "refresh", "ping", "command"] as const;

const CHANNEL = /^[A-Za-z0-9_\-.:@|=+/]{1,128}$/;
const EVENT = /^[A-Za-z0-9_\-.:]{1,64}$/;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9_\-.:@|=+/]{1,128}$/;
const EPOCH = /^[A-Za-z0-9_-]*$/;
const PROTOTYPE_KEYS = new Set(["__proto__", "constructor", "prototype"]);

export type Code = string;
/** The answers allowed for one request: "ok" or error codes. */
export type Allowed = Set<Code>;

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !isBinary(value);
}

function isBinary(value: unknown): boolean {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}

/** Characters as JSON Schema counts them: code points, a lone surrogate being one. */
function characters(text: string): number {
  return [...text].length;
}

/** 0 for a scalar, 1 for `{}` or `[1]`, 2 for `{"a":[]}`. */
export function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [top, depth] = stack.pop() as [unknown, number];
    if (typeof top !== "object" || top === null || isBinary(top)) continue;
    deepest = Math.max(deepest, depth + 1);
    for (const child of Array.isArray(top) ? top : Object.values(top)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** An own key `__proto__`, `constructor` or `prototype`, or binary data, at any depth. */
function holdsRefusedContent(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const top = stack.pop();
    if (typeof top !== "object" || top === null) continue;
    if (isBinary(top)) return true;
    for (const [key, child] of Object.entries(top)) {
      if (PROTOTYPE_KEYS.has(key)) return true;
      stack.push(child);
    }
  }
  return false;
}

function holdsNonFiniteNumber(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const top = stack.pop();
    if (typeof top === "number" && !Number.isFinite(top)) return true;
    if (typeof top === "object" && top !== null) for (const child of Array.isArray(top) ? (top as unknown[]) : Object.values(top)) stack.push(child);
  }
  return false;
}

export function isValidChannel(channel: unknown): channel is string {
  return typeof channel === "string" && CHANNEL.test(channel);
}

/** protocol.md, Channels: public ones, the user's own, and the token's grants (exact, or `ns:*` for `ns:` and more). */
export function maySubscribe(sub: string, grants: readonly string[], channel: string): boolean {
  if (channel === "race" || channel === "forecasts" || channel.startsWith("forecasts:")) return true;
  if (channel === `user:${sub}`) return true;
  return grants.some((grant) => (grant.endsWith(":*") ? channel.length > grant.length - 1 && channel.startsWith(grant.slice(0, -1)) && !channel.startsWith("user:") : grant === channel));
}

export type ClientRequest =
  | { readonly type: "subscribe"; readonly channel: string }
  | { readonly type: "unsubscribe"; readonly channel: string }
  | { readonly type: "refresh"; readonly token: string }
  | { readonly type: "ping" }
  | { readonly type: "command"; readonly name: string };

function isPosition(value: unknown): boolean {
  if (!isJsonObject(value)) return false;
  const { offset, epoch } = value;
  return typeof offset === "number" && Number.isInteger(offset) && offset >= 0 && offset <= Number.MAX_SAFE_INTEGER && typeof epoch === "string" && characters(epoch) <= 64 && EPOCH.test(epoch);
}

/**
 * A request's type and fields (a `/ws` frame once its id is read, or a
 * Socket.IO event): the request, or the refusals that apply to it.
 */
export function readRequest(type: string, fields: unknown): { readonly request: ClientRequest } | { readonly refused: Allowed } {
  if (!isJsonObject(fields)) return { refused: new Set(["bad_request"]) };
  const refused: Allowed = new Set();
  if (depthOf(fields) > FUZZ_LIMITS.maxJsonDepth + 1 || holdsRefusedContent(fields)) refused.add("bad_request");
  const known = (REQUEST_TYPES as readonly string[]).includes(type);
  if (!known) refused.add("unknown_type");
  else if (!fieldsMatch(type, fields)) refused.add("bad_request");
  if (refused.size > 0) return { refused };
  return { request: { ...fields, type } as unknown as ClientRequest };
}

function fieldsMatch(type: string, fields: Record<string, unknown>): boolean {
  switch (type) {
    case "subscribe":
      return typeof fields["channel"] === "string" && (!("since" in fields) || isPosition(fields["since"]));
    case "unsubscribe":
      return typeof fields["channel"] === "string";
    case "refresh":
      return typeof fields["token"] === "string" && characters(fields["token"]) >= 1;
    case "ping":
      return true;
    case "command":
      return typeof fields["name"] === "string" && characters(fields["name"]) >= 1 && characters(fields["name"]) <= 64 && "data" in fields;
    default:
      return false;
  }
}

/**
 * One connection's channels as the documents define them, to tell what a
 * request must get. Requests are applied in the order the connection sent
 * them; a subscribe whose channel a later request of the same batch
 * unsubscribes may also be answered `not_subscribed`.
 */
export class SessionModel {
  private readonly members: Set<string>;
  private pendingSubscribes = new Map<string, Allowed>();

  constructor(
    private readonly sub: string,
    private readonly grants: readonly string[],
    /** Refresh tokens the test minted and the answer each must get; any other token is `invalid_token`. */
    private readonly refreshAnswers: ReadonlyMap<string, Code>,
    /** Commands on a node without a database. */
    private readonly commandAnswer: Code = "unavailable",
  ) {
    this.members = new Set([`user:${sub}`]);
  }

  /** A new batch: earlier subscribes have been answered. */
  startBatch(): void {
    this.pendingSubscribes = new Map();
  }

  apply(request: ClientRequest): Allowed {
    switch (request.type) {
      case "ping":
        return new Set(["ok"]);
      case "command":
        return new Set([this.commandAnswer]);
      case "refresh":
        return new Set([this.refreshAnswers.get(request.token) ?? "invalid_token"]);
      case "unsubscribe": {
        if (!this.members.delete(request.channel)) return new Set(["not_subscribed"]);
        this.pendingSubscribes.get(request.channel)?.add("not_subscribed");
        return new Set(["ok"]);
      }
      case "subscribe": {
        const { channel } = request;
        if (!isValidChannel(channel)) return new Set(["invalid_channel"]);
        if (!maySubscribe(this.sub, this.grants, channel)) return new Set(["forbidden"]);
        if (this.members.has(channel)) return new Set(["already_subscribed"]);
        if (this.members.size >= FUZZ_LIMITS.maxSubscriptions) return new Set(["limit_exceeded"]);
        this.members.add(channel);
        const allowed: Allowed = new Set(["ok"]);
        this.pendingSubscribes.set(channel, allowed);
        return allowed;
      }
    }
  }
}

/** What a `/ws` frame must get: an `error` frame, a `reply` to its id, or the socket's close. */
export type FrameAnswer = { readonly kind: "error" } | { readonly kind: "reply"; readonly id: number; readonly allowed: Allowed } | { readonly kind: "close"; readonly code: 1009 | 1006 };

/** protocol.md, Client → server and Close codes, for one frame on `/ws`. */
export function frameAnswer(data: Buffer, binary: boolean, model: SessionModel): FrameAnswer {
  if (data.length > WS_CUT_BYTES) return { kind: "close", code: 1006 };
  if (data.length > FUZZ_LIMITS.maxFrameBytes) return { kind: "close", code: 1009 };
  if (binary) return { kind: "error" };
  if (!isUtf8(data)) return { kind: "close", code: 1006 };
  let frame: unknown;
  try {
    frame = JSON.parse(data.toString("utf8"));
  } catch {
    return { kind: "error" };
  }
  if (!isJsonObject(frame)) return { kind: "error" };
  const { id, type } = frame;
  if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > Number.MAX_SAFE_INTEGER) return { kind: "error" };
  if (typeof type !== "string") return { kind: "reply", id, allowed: new Set(["bad_request"]) };
  const read = readRequest(type, frame);
  return { kind: "reply", id, allowed: "refused" in read ? read.refused : model.apply(read.request) };
}

/** A publish accepted into a channel, as a subscriber must receive it. */
export interface Accepted {
  readonly channel: string;
  readonly event: string;
  /** `data` as JSON.stringify writes what JSON.parse read. */
  readonly data: string;
  readonly idempotencyKey?: string;
}

/** protocol.md, Publish API: one message's refusal status, or the message. */
function publishMessage(value: unknown): { readonly refused: Set<number> } | { readonly accepted: Accepted } {
  if (!isJsonObject(value)) return { refused: new Set([400]) };
  const { channel, event, data, idempotencyKey } = value;
  const refused = new Set<number>();
  if (!isValidChannel(channel)) refused.add(400);
  else if (channel === "race") refused.add(403);
  if (typeof event !== "string" || !EVENT.test(event)) refused.add(400);
  if (data === undefined || depthOf(data) > FUZZ_LIMITS.maxJsonDepth || holdsNonFiniteNumber(data)) refused.add(400);
  if (idempotencyKey !== undefined && (typeof idempotencyKey !== "string" || !IDEMPOTENCY_KEY.test(idempotencyKey))) refused.add(400);
  if (refused.size > 0) return { refused };
  return {
    accepted: { channel: channel as string, event: event as string, data: JSON.stringify(data), ...(idempotencyKey === undefined ? {} : { idempotencyKey: idempotencyKey as string }) },
  };
}

export type PublishAnswer = { readonly status: Set<number> } | { readonly status: 200; readonly batch: boolean; readonly messages: readonly Accepted[] };

/** The whole request: key, size, encoding, JSON, shape, then each message. */
export function publishAnswer(body: Buffer, keyOk: boolean): PublishAnswer {
  if (!keyOk) return { status: new Set([401]) };
  if (body.length > FUZZ_LIMITS.publishMaxBodyBytes) return { status: new Set([413]) };
  if (!isUtf8(body)) return { status: new Set([400]) };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return { status: new Set([400]) };
  }
  const batch = isJsonObject(parsed) && "messages" in parsed;
  const values: unknown[] = batch ? ((parsed as { messages: unknown }).messages as unknown[]) : [parsed];
  if (batch && (!Array.isArray(values) || values.length === 0 || values.length > FUZZ_LIMITS.publishMaxBatch)) return { status: new Set([400]) };
  const refused = new Set<number>();
  const messages: Accepted[] = [];
  for (const value of values) {
    const one = publishMessage(value);
    if ("refused" in one) for (const status of one.refused) refused.add(status);
    else messages.push(one.accepted);
  }
  return refused.size > 0 ? { status: refused } : { status: 200, batch, messages };
}

/** backend-feeds.md, Rejected entries: the `code` of a set-aside entry, or the publish. */
export function ingestOutcome(fields: ReadonlyArray<readonly [string, string | Buffer]>): { readonly rejected: Set<string> } | { readonly accepted: Accepted } {
  const first = (name: string): string | Buffer | undefined => fields.find(([field]) => field === name)?.[1];
  const text = (value: string | Buffer | undefined): string | undefined => (value === undefined ? undefined : value.toString());
  const rawData = first("data");
  let data: unknown;
  if (rawData !== undefined) {
    const bytes = typeof rawData === "string" ? Buffer.from(rawData) : rawData;
    if (!isUtf8(bytes)) return { rejected: new Set(["bad_json"]) };
    if (bytes.length > FUZZ_LIMITS.publishMaxBodyBytes) return { rejected: new Set(["too_large"]) };
    try {
      data = JSON.parse(bytes.toString("utf8"));
    } catch {
      return { rejected: new Set(["bad_json"]) };
    }
  }
  const outcome = publishMessage({ channel: text(first("channel")), event: text(first("event")), data });
  if ("accepted" in outcome) return outcome;
  return { rejected: new Set([...outcome.refused].map((status) => (status === 403 ? "forbidden" : "invalid"))) };
}
