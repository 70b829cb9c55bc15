/**
 * Strict parsing of client frames. Anything the server cannot act on becomes a
 * typed refusal: with the request id when one can be read (→ `reply`), without
 * when not (→ `error` frame).
 */

import { isPlainObject } from "../../../shared/src/json.js";
import { exceedsJsonDepth } from "../../../shared/src/json-limits.js";
import { ErrorCodes } from "../../../shared/src/codes.js";
import type { ClientFrame, ErrorBody, JsonValue } from "../../../shared/src/protocol.js";

export type ParsedFrame =
  | { readonly ok: true; readonly frame: ClientFrame }
  | { readonly ok: false; readonly id: number | null; readonly error: ErrorBody };

const MAX_ID = 2 ** 53 - 1;

function refuse(id: number | null, code: ErrorBody["code"], message: string): ParsedFrame {
  return { ok: false, id, error: { code, message } };
}

/** `maxDepth` bounds a command's `data`; the frame around it is one level more. */
export function parseClientFrame(text: string, maxDepth: number): ParsedFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return refuse(null, ErrorCodes.badRequest.code, "frame is not valid JSON");
  }
  if (!isPlainObject(value)) return refuse(null, ErrorCodes.badRequest.code, "frame must be a JSON object");

  const { id, type } = value;
  if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_ID) {
    return refuse(null, ErrorCodes.badRequest.code, "frame needs an integer id ≥ 0");
  }
  if (typeof type !== "string") return refuse(id, ErrorCodes.badRequest.code, "frame needs a string type");
  if (exceedsJsonDepth(value, maxDepth + 1)) return refuse(id, ErrorCodes.badRequest.code, `frame nests deeper than ${maxDepth + 1} levels`);

  switch (type) {
    case "subscribe":
    case "unsubscribe": {
      const channel = value["channel"];
      if (typeof channel !== "string") return refuse(id, ErrorCodes.badRequest.code, `${type} needs a string channel`);
      return { ok: true, frame: { type, id, channel } };
    }
    case "refresh": {
      const token = value["token"];
      if (typeof token !== "string" || token.length === 0) return refuse(id, ErrorCodes.badRequest.code, "refresh needs a token");
      return { ok: true, frame: { type, id, token } };
    }
    case "ping":
      return { ok: true, frame: { type, id } };
    case "command": {
      const name = value["name"];
      if (typeof name !== "string" || name.length === 0 || name.length > 64) return refuse(id, ErrorCodes.badRequest.code, "command needs a name");
      if (!("data" in value)) return refuse(id, ErrorCodes.badRequest.code, "command needs data");
      return { ok: true, frame: { type, id, name, data: value["data"] as JsonValue } };
    }
    default:
      return refuse(id, ErrorCodes.unknownType.code, `unknown frame type "${type.slice(0, 32)}"`);
  }
}
