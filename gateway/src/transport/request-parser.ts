/**
 * The one parser of client requests, for both transports: a `/ws` text frame
 * (parseFrame) or a Socket.IO event's name and payload (parse) becomes a
 * request checked against shared/src/requests.ts, or a typed refusal. The same
 * input gets the same error code and message on either transport.
 *
 * What a request carries on is only what its schema lists, copied out of the
 * parsed object; unknown fields stay behind. Keys that could reach a
 * prototype (`__proto__`, `constructor`, `prototype`) are refused at any depth,
 * and so is binary data (Socket.IO attachments), so nothing downstream has to
 * think about them.
 */

import { Compile, type Validator } from "typebox/compile";
import type { TLocalizedValidationError } from "typebox/error";
import { ErrorCodes } from "../../../shared/src/codes.js";
import { isPlainObject } from "../../../shared/src/json.js";
import { exceedsJsonDepth } from "../../../shared/src/json-limits.js";
import type { ErrorBody } from "../../../shared/src/protocol.js";
import { REQUEST_FIELDS, REQUEST_TYPES, RequestId, type ClientRequest, type RequestType } from "../../../shared/src/requests.js";

export type ParsedRequest = { readonly ok: true; readonly request: ClientRequest } | { readonly ok: false; readonly error: ErrorBody };

/** A `/ws` frame: refusals carry the request id when one could be read (→ `reply`), else null (→ `error` frame). */
export type ParsedFrame = { readonly ok: true; readonly id: number; readonly request: ClientRequest } | { readonly ok: false; readonly id: number | null; readonly error: ErrorBody };

const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

interface RequestCheck {
  readonly validator: Validator;
  /** The fields a request of this type carries on. */
  readonly fields: readonly string[];
}

function badRequest(message: string): { readonly ok: false; readonly error: ErrorBody } {
  return { ok: false, error: { code: ErrorCodes.badRequest.code, message } };
}

function isBinary(value: object): boolean {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}

/**
 * Why `value` holds what no request accepts, at any depth: a key that could
 * reach a prototype, or binary data (a Socket.IO attachment, which a JSON
 * object cannot hold); null when it holds neither. Iterative: depth is
 * checked first, but stay safe anyway.
 */
function refusedContent(value: object): string | null {
  const stack: object[] = [value];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    if (isBinary(top)) return "frame holds binary data, which no request accepts; send JSON";
    for (const [key, child] of Object.entries(top) as Array<[string, unknown]>) {
      if (FORBIDDEN_KEYS.has(key)) return `frame has the key "${key}", which no request accepts`;
      if (typeof child === "object" && child !== null) stack.push(child);
    }
  }
  return null;
}

/** `command.name must not have more than 64 characters`, in the publish API's style (`messages[3].event must be …`). */
function describeError(type: RequestType, error: TLocalizedValidationError | undefined): string {
  if (error === undefined) return `${type} is not a valid request`;
  const where = [type, ...error.instancePath.split("/").filter((part) => part.length > 0)].join(".");
  if (error.keyword === "required") {
    const missing = (error.params as { readonly requiredProperties?: readonly string[] }).requiredProperties ?? [];
    return `${where} needs ${missing.join(" and ")}`;
  }
  return `${where} ${error.message}`;
}

export class RequestParser {
  private readonly checks: ReadonlyMap<string, RequestCheck>;
  private readonly idCheck = Compile(RequestId);

  /** `maxJsonDepth` (MAX_JSON_DEPTH) bounds a command's `data`; the request around it is one level more. */
  constructor(private readonly maxJsonDepth: number) {
    this.checks = new Map(REQUEST_TYPES.map((type) => [type, { validator: Compile(REQUEST_FIELDS[type]), fields: Object.keys(REQUEST_FIELDS[type].properties) }]));
  }

  /** A request named `type` with `fields`: a Socket.IO event and its payload, or a `/ws` frame once its envelope is read. Never throws. */
  parse(type: string, fields: unknown): ParsedRequest {
    if (!isPlainObject(fields) || isBinary(fields)) return badRequest("frame must be a JSON object");
    if (exceedsJsonDepth(fields, this.maxJsonDepth + 1)) return badRequest(`frame nests deeper than ${this.maxJsonDepth + 1} levels`);
    const refused = refusedContent(fields);
    if (refused !== null) return badRequest(refused);
    const check = this.checks.get(type);
    if (check === undefined) return { ok: false, error: { code: ErrorCodes.unknownType.code, message: `unknown frame type "${type.slice(0, 32)}"` } };
    if (!check.validator.Check(fields)) return badRequest(describeError(type as RequestType, check.validator.Errors(fields)[0]));
    const request: Record<string, unknown> = { type };
    for (const field of check.fields) {
      if (Object.hasOwn(fields, field)) request[field] = fields[field];
    }
    return { ok: true, request: request as ClientRequest };
  }

  /** A `/ws` text frame: `{"type":…,"id":…,…fields}`. Never throws. */
  parseFrame(text: string): ParsedFrame {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return { ...badRequest("frame is not valid JSON"), id: null };
    }
    if (!isPlainObject(value)) return { ...badRequest("frame must be a JSON object"), id: null };
    const { id, type } = value;
    if (!this.idCheck.Check(id)) return { ...badRequest("frame needs an integer id ≥ 0"), id: null };
    if (typeof type !== "string") return { ...badRequest("frame needs a string type"), id };
    const parsed = this.parse(type, value);
    return parsed.ok ? { ok: true, id, request: parsed.request } : { ok: false, id, error: parsed.error };
  }
}
