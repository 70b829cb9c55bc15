/**
 * Hostile HTTP requests at the node's front door, written byte by byte on
 * raw TCP: WebSocket upgrades to `/ws` and `/socket.io/`, long-polling
 * handshakes, other paths; with header floods, huge query strings, broken
 * tokens, subprotocol lists and resume positions. Each is answered as the
 * documents say (protocol.md Connecting, socketio.md, operations.md
 * Request limits), or, for request heads uWebSockets.js does not parse, not
 * at all.
 */

import net from "node:net";
import fc from "fast-check";

export const WS_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
/** uWebSockets.js 20.30 parses at most this many header lines; past it a request gets no answer. */
export const MAX_HEADER_LINES = 48;
/** A request head that arrives in pieces is parsed only up to this many bytes. */
export const HEAD_BUFFER_BYTES = 4096;

type TokenSource =
  | { readonly kind: "header"; readonly token: TokenKind }
  | { readonly kind: "header-other-scheme" }
  | { readonly kind: "query"; readonly token: TokenKind }
  | { readonly kind: "subprotocol"; readonly token: TokenKind; readonly withGateway: boolean; readonly bearers: 1 | 2 }
  | { readonly kind: "none" };

type TokenKind = "valid" | "garbage" | "huge" | "empty";

export interface HandshakeCase {
  readonly node: number;
  readonly method: string;
  readonly route: "ws" | "socketio" | "other";
  readonly upgradeKey: "valid" | "short" | "none";
  readonly tokenSource: TokenSource;
  /** `/ws?since=` */
  readonly since: string | null;
  /** `/socket.io/` query: EIO, transport, sid (null: absent). */
  readonly eio: string | null;
  readonly transport: string | null;
  readonly sid: string | null;
  /** Extra header lines: a few, or a flood. */
  readonly extraHeaders: ReadonlyArray<readonly [string, string]>;
  readonly extraQuery: string;
  readonly lineEnd: "\r\n" | "\n";
  readonly version: "HTTP/1.1" | "HTTP/1.0";
}

const PARSED_METHODS = ["GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "PATCH"];

const tokenKind: fc.Arbitrary<TokenKind> = fc.constantFrom("valid", "valid", "garbage", "huge", "empty");

const tokenSource: fc.Arbitrary<TokenSource> = fc.oneof(
  { weight: 4, arbitrary: tokenKind.map((token) => ({ kind: "header" as const, token })) },
  { weight: 1, arbitrary: fc.constant({ kind: "header-other-scheme" as const }) },
  { weight: 3, arbitrary: tokenKind.map((token) => ({ kind: "query" as const, token })) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("subprotocol" as const), token: tokenKind, withGateway: fc.boolean(), bearers: fc.constantFrom(1 as const, 1 as const, 2 as const) }) },
  { weight: 2, arbitrary: fc.constant({ kind: "none" as const }) },
);

const headerName = fc.oneof(fc.stringMatching(/^X-[A-Za-z0-9-]{1,20}$/), fc.constantFrom("Cookie", "User-Agent", "Origin", "X-Forwarded-For", "Accept", "Sec-WebSocket-Extensions"));
const headerValue = fc.oneof({ weight: 6, arbitrary: fc.stringMatching(/^[!-~][ -~]{0,40}$/) }, { weight: 1, arbitrary: fc.integer({ min: 1000, max: 12_000 }).map((n) => "v".repeat(n)) });

export const handshakeCase: fc.Arbitrary<HandshakeCase> = fc.record({
  node: fc.nat(1),
  method: fc.oneof({ weight: 12, arbitrary: fc.constant("GET") }, { weight: 2, arbitrary: fc.constantFrom(...PARSED_METHODS) }, { weight: 1, arbitrary: fc.constantFrom("get", "FOO", "PRI") }),
  route: fc.constantFrom("ws" as const, "ws" as const, "socketio" as const, "socketio" as const, "other" as const),
  upgradeKey: fc.constantFrom("valid" as const, "valid" as const, "valid" as const, "none" as const, "short" as const),
  tokenSource,
  since: fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom("0:abc", "17:", "99999999999999999:x", "-1:a", "1:a b", "x", "") }),
  eio: fc.oneof({ weight: 6, arbitrary: fc.constant("4") }, { weight: 1, arbitrary: fc.constantFrom("3", "5", "", null) }),
  transport: fc.oneof({ weight: 6, arbitrary: fc.constantFrom("polling", "websocket") }, { weight: 1, arbitrary: fc.constantFrom("webtransport", "x", "", null) }),
  sid: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom("node-x.abc", "", "x") }),
  extraHeaders: fc.oneof({ weight: 6, arbitrary: fc.array(fc.tuple(headerName, headerValue), { maxLength: 5 }) }, { weight: 1, arbitrary: fc.array(fc.tuple(headerName, headerValue), { minLength: 40, maxLength: 80 }) }),
  extraQuery: fc.oneof({ weight: 6, arbitrary: fc.constant("") }, { weight: 1, arbitrary: fc.integer({ min: 100, max: 100_000 }).map((n) => `pad=${"q".repeat(n)}`) }, { weight: 1, arbitrary: fc.constantFrom("%zz=%", "a=%E0%A4%A", "&&&=&", "token") }),
  lineEnd: fc.constantFrom("\r\n" as const, "\r\n" as const, "\r\n" as const, "\r\n" as const, "\r\n" as const, "\r\n" as const, "\r\n" as const, "\r\n" as const, "\r\n" as const, "\n" as const),
  version: fc.oneof({ weight: 12, arbitrary: fc.constant("HTTP/1.1" as const) }, { weight: 1, arbitrary: fc.constant("HTTP/1.0" as const) }),
});

export interface RenderedHandshake {
  readonly head: string;
  readonly expected: Expected;
}

/** An HTTP answer the documents allow: status and, for errors, the JSON body's code. */
export interface AllowedAnswer {
  readonly status: number;
  /** `error.code` of a gateway error body, or engine.io's numeric `code` as text; undefined for 101 and 200. */
  readonly code?: string;
}

export interface Expected {
  readonly answers: readonly AllowedAnswer[];
  /** The connection may also be closed, or left without an answer: a head uWS does not parse. */
  readonly mayGoUnanswered: boolean;
}

function tokenText(kind: TokenKind, validToken: string): string {
  switch (kind) {
    case "valid":
      return validToken;
    case "garbage":
      return "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
    case "huge":
      return "a".repeat(9000);
    case "empty":
      return "";
  }
}

const SINCE = /^(\d{1,16}):([A-Za-z0-9_-]{0,64})$/;

/** The request as bytes and the answers the documents allow for it. */
export function renderHandshake(c: HandshakeCase, validToken: string): RenderedHandshake {
  const query: string[] = [];
  const headers: Array<[string, string]> = [["Host", "gateway.test"]];
  const upgrade = c.upgradeKey !== "none";
  if (upgrade) headers.push(["Upgrade", "websocket"], ["Connection", "Upgrade"], ["Sec-WebSocket-Version", "13"], ["Sec-WebSocket-Key", c.upgradeKey === "valid" ? WS_KEY : "c2hvcnQ="]);
  let token: string | undefined;
  let offeredProtocols: string | undefined;
  const source = c.tokenSource;
  if (source.kind === "header") {
    headers.push(["Authorization", `Bearer ${tokenText(source.token, validToken)}`]);
    token = bearer(`Bearer ${tokenText(source.token, validToken)}`);
  } else if (source.kind === "header-other-scheme") {
    headers.push(["Authorization", `Basic ${Buffer.from("a:b").toString("base64")}`]);
  } else if (source.kind === "query") {
    query.push(`token=${tokenText(source.token, validToken)}`);
  } else if (source.kind === "subprotocol") {
    const entries = [...(source.withGateway ? ["gateway.v1"] : []), ...Array.from({ length: source.bearers }, () => `bearer.${tokenText(source.token, validToken)}`)];
    offeredProtocols = entries.join(", ");
    headers.push(["Sec-WebSocket-Protocol", offeredProtocols]);
  }
  const path = c.route === "ws" ? "/ws" : c.route === "socketio" ? "/socket.io/" : "/fz/nothing";
  if (c.route === "ws" && c.since !== null) query.push(`since=${c.since}`);
  if (c.route === "socketio") {
    if (c.eio !== null) query.push(`EIO=${c.eio}`);
    if (c.transport !== null) query.push(`transport=${c.transport}`);
    if (c.sid !== null) query.push(`sid=${c.sid}`);
  }
  if (c.extraQuery !== "") query.push(c.extraQuery);
  headers.push(...c.extraHeaders.map(([name, value]): [string, string] => [name, value]));
  const target = query.length === 0 ? path : `${path}?${query.join("&")}`;
  const head = `${c.method} ${target} ${c.version}${c.lineEnd}${headers.map(([name, value]) => `${name}: ${value}${c.lineEnd}`).join("")}${c.lineEnd}`;

  const parsed = c.lineEnd === "\r\n" && c.version === "HTTP/1.1" && PARSED_METHODS.includes(c.method) && headers.length <= MAX_HEADER_LINES && !/\s/.test(target);
  if (!parsed) return { head, expected: { answers: [], mayGoUnanswered: true } };
  const mayGoUnanswered = Buffer.byteLength(head) > HEAD_BUFFER_BYTES;
  const isUpgrade = c.method === "GET" && c.upgradeKey === "valid";
  const params = new URLSearchParams(query.join("&"));
  const answers = c.route === "ws" ? wsAnswers(isUpgrade, offeredProtocols, token, params, validToken) : c.route === "socketio" ? socketIoAnswers(c, isUpgrade, headers, params, validToken) : [{ status: 404, code: "not_found" }];
  return { head, expected: { answers, mayGoUnanswered } };
}

function bearer(header: string): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
}

/** protocol.md, Connecting: the refusals that apply, or the upgrade. */
function wsAnswers(isUpgrade: boolean, offered: string | undefined, headerToken: string | undefined, params: URLSearchParams, validToken: string): AllowedAnswer[] {
  if (!isUpgrade) return [{ status: 404, code: "not_found" }];
  const answers: AllowedAnswer[] = [];
  const entries = (offered ?? "").split(",").map((entry) => entry.trim()).filter((entry) => entry.length > 0);
  const bearers = entries.filter((entry) => entry.startsWith("bearer."));
  const offerRefused = bearers.length > 1 || (bearers.length === 1 && !entries.includes("gateway.v1"));
  if (offerRefused) answers.push({ status: 400, code: "bad_request" });
  const protocolToken = bearers.length === 1 ? bearers[0]!.slice("bearer.".length) : "";
  const queryToken = params.get("token") ?? "";
  const token = headerToken ?? (protocolToken !== "" ? protocolToken : queryToken !== "" ? queryToken : undefined);
  if (token !== validToken) answers.push({ status: 401, code: "invalid_token" });
  const since = params.get("since") ?? "";
  const match = SINCE.exec(since);
  if (since !== "" && (match === null || !Number.isSafeInteger(Number(match[1])))) answers.push({ status: 400, code: "bad_request" });
  return answers.length > 0 ? answers : [{ status: 101 }];
}

/** socketio.md and engine.io's own answers (`{"code":N,"message":…}`): refusals that apply, or the session. */
function socketIoAnswers(c: HandshakeCase, isUpgrade: boolean, headers: ReadonlyArray<readonly [string, string]>, params: URLSearchParams, validToken: string): AllowedAnswer[] {
  // engine.io reads the query into an object: the last value of a name wins.
  const last = (name: string): string | undefined => params.getAll(name).at(-1);
  const transport = last("transport");
  // engine.io reads an empty sid as none: a new session, which needs the token.
  const sid = last("sid") === "" ? undefined : last("sid");
  const authorization = headers.find(([name]) => name === "Authorization")?.[1] ?? "";
  const token = bearer(authorization) ?? (last("token") !== undefined && last("token") !== "" ? last("token") : undefined);
  const tokenOk = token === validToken;
  const engine = (code: number): AllowedAnswer => ({ status: 400, code: String(code) });
  if (isUpgrade) {
    if (transport !== "websocket") return [engine(3)];
    if (sid !== undefined) return [engine(1)];
    if (!tokenOk) return [{ status: 401, code: "invalid_token" }];
    return last("EIO") === "4" ? [{ status: 101 }] : [engine(5)];
  }
  if (sid === undefined && c.method === "GET" && !tokenOk) return [{ status: 401, code: "invalid_token" }];
  if (transport !== "polling" && transport !== "websocket") return [engine(0)];
  if (sid !== undefined) return [engine(1)];
  if (c.method !== "GET") return [engine(2)];
  if (transport === "websocket") return [engine(3)];
  if (last("EIO") !== "4") return [engine(5)];
  return [{ status: 200 }];
}

export type HandshakeResult = { readonly kind: "answer"; readonly status: number; readonly code?: string; readonly body: string } | { readonly kind: "unanswered"; readonly how: string };

/**
 * Sends one request head on a new connection and reads the answer: the
 * status line and the JSON body's code, a 101 (the connection is then
 * dropped), or nothing within `waitMs`.
 */
export function sendHandshake(port: number, head: string, waitMs: number): Promise<HandshakeResult> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(head, "latin1"));
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (result: HandshakeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ kind: "unanswered", how: "no answer" }), waitMs);
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const text = received.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end === -1) return;
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      if (status === 101) {
        finish({ kind: "answer", status, body: "" });
        return;
      }
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? -1);
      if (length < 0 || received.length < end + 4 + length) return;
      const body = received.subarray(end + 4, end + 4 + length).toString("utf8");
      finish({ kind: "answer", status, body, ...codeOf(body) });
    });
    socket.on("end", () => finish({ kind: "unanswered", how: `closed after ${received.length} bytes` }));
    socket.on("error", (err) => finish({ kind: "unanswered", how: err.message }));
  });
}

function codeOf(body: string): { code?: string } {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown }; code?: unknown };
    const code = parsed.error?.code ?? parsed.code;
    return typeof code === "string" || typeof code === "number" ? { code: String(code) } : {};
  } catch {
    return {};
  }
}

/** Whether `result` is one of the answers `expected` allows. */
export function answeredAsDocumented(result: HandshakeResult, expected: Expected): boolean {
  if (result.kind === "unanswered") return expected.mayGoUnanswered;
  return expected.answers.some((answer) => answer.status === result.status && (answer.code === undefined || answer.code === result.code));
}
