/**
 * Every HTTP answer a gateway node gives anywhere in the test suite, checked
 * against docs/openapi.yaml: the path and method are documented (or the
 * answer is the catch-all 404), the status is one the operation lists, the
 * content type is one it lists for that status, and a JSON body validates
 * against that response's schema (Ajv, JSON Schema 2020-12, the dialect of
 * OpenAPI 3.1).
 *
 * What counts as a node's answer: one carrying uWebSockets.js's
 * `uWebSockets` header, directly or through NGINX (which passes it on).
 * NGINX's own answers (its /readyz, /healthz, rate limits, error pages) do
 * not carry it and are NGINX's contract, not the node's. Through NGINX's
 * operator routes `/node/<name>/<path>`, the node's `<path>` is checked.
 *
 * How answers get here: openapi-setup.ts (a vitest setup file, so every test
 * file) wraps fetch; the raw WebSocket helper (refused upgrades) and
 * getFrom() report theirs. A problem fails the test that received the
 * answer (afterEach), and every checked answer is appended to the run's log
 * (OPENAPI_RESPONSE_LOG, set by global-setup.ts), which the run summarises.
 */

import { appendFileSync, readFileSync } from "node:fs";
import path from "node:path";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { parse } from "yaml";
import { repoRoot } from "../../../scripts/lib/paths.js";

export const OPENAPI_FILE = path.join(repoRoot(), "docs", "openapi.yaml");
/** Where each checked answer is logged, one `METHOD path status` line each (set for a whole run by global-setup.ts). */
export const RESPONSE_LOG_VARIABLE = "OPENAPI_RESPONSE_LOG";

export interface ObservedResponse {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  /** Lower-cased header names. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  /** The body as text; null when it was not read (only JSON bodies are). */
  readonly body: string | null;
}

type Json = Record<string, unknown>;

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

function escapePointer(part: string): string {
  return part.replace(/~/g, "~0").replace(/\//g, "~1");
}

/** Whether a response came from a uWebSockets.js app, i.e. a gateway node. */
export function fromGatewayNode(headers: Readonly<Record<string, string | undefined>>): boolean {
  return headers["uwebsockets"] !== undefined;
}

export class OpenApiContract {
  readonly document: Json;
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(file: string = OPENAPI_FILE) {
    this.document = parse(readFileSync(file, "utf8")) as Json;
    // The document is not a schema itself; only the schemas inside it are compiled, on demand.
    this.ajv = new Ajv2020({ strict: false, validateSchema: false, allErrors: true, validateFormats: false });
    this.ajv.addSchema(this.document, "openapi");
  }

  /** The (path, method) pairs the document lists. */
  operations(): Array<{ path: string; method: string }> {
    const out: Array<{ path: string; method: string }> = [];
    for (const [route, item] of Object.entries(this.document["paths"] as Json)) {
      const resolved = this.resolve(item as Json, `/paths/${escapePointer(route)}`).value;
      for (const method of METHODS) if (resolved[method] !== undefined) out.push({ path: route, method });
    }
    return out;
  }

  /** What is wrong with the answer, or null when the document allows it. */
  problem(response: ObservedResponse): string | null {
    if (response.status === 101) return null;
    let route = new URL(response.url).pathname;
    const viaNginx = (response.headers["server"] ?? "").startsWith("nginx");
    const operatorRoute = viaNginx ? /^\/node\/[A-Za-z0-9_-]+(\/.*)$/.exec(route) : null;
    if (operatorRoute !== null) route = operatorRoute[1] as string;
    const method = response.method.toLowerCase();
    const where = `${response.method} ${route} → ${response.status}`;

    let responses: { value: Json; pointer: string } | null = null;
    const paths = this.document["paths"] as Json;
    const item = paths[route] === undefined ? null : this.resolve(paths[route] as Json, `/paths/${escapePointer(route)}`);
    if (item !== null && item.value[method] !== undefined) {
      const operation = this.resolve(item.value[method] as Json, `${item.pointer}/${method}`);
      responses = this.resolve(operation.value["responses"] as Json, `${operation.pointer}/responses`);
    }
    let documented: { value: Json; pointer: string } | null;
    if (responses === null) {
      // Not a documented operation: the catch-all's answer.
      const catchAll = (this.document["x-catch-all"] as Json)["response"] as Json;
      if (response.status !== 404) return `${where}: not a documented operation, so it must be the catch-all 404`;
      documented = this.resolve(catchAll, "/x-catch-all/response");
    } else {
      const codes = [String(response.status), `${Math.floor(response.status / 100)}XX`, "default"];
      const code = codes.find((candidate) => responses.value[candidate] !== undefined);
      if (code === undefined) return `${where}: status not documented (documented: ${Object.keys(responses.value).join(", ")})`;
      documented = this.resolve(responses.value[code] as Json, `${responses.pointer}/${escapePointer(code)}`);
    }

    const content = documented.value["content"] as Json | undefined;
    if (content === undefined) return null;
    const mediaType = (response.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    if (content[mediaType] === undefined) return `${where}: content type "${mediaType}" not documented (documented: ${Object.keys(content).join(", ")})`;
    if (mediaType !== "application/json" || response.body === null) return null;
    let body: unknown;
    try {
      body = JSON.parse(response.body);
    } catch {
      return `${where}: body is not JSON: ${response.body.slice(0, 200)}`;
    }
    const validate = this.validator(`${documented.pointer}/content/${escapePointer(mediaType)}/schema`);
    if (validate(body)) return null;
    return `${where}: body does not match the schema: ${this.ajv.errorsText(validate.errors)}; body: ${response.body.slice(0, 300)}`;
  }

  /** Follows local `$ref`s (responses, path items), keeping the JSON pointer of where the value lives. */
  private resolve(value: Json, pointer: string): { value: Json; pointer: string } {
    let current = value;
    let at = pointer;
    for (let hops = 0; typeof current["$ref"] === "string" && hops < 10; hops++) {
      const ref = current["$ref"];
      if (!ref.startsWith("#/")) throw new Error(`only local references are supported: ${ref}`);
      at = ref.slice(1);
      current = ref
        .slice(2)
        .split("/")
        .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))
        .reduce<Json>((node, part) => node[part] as Json, this.document);
    }
    return { value: current, pointer: at };
  }

  private validator(pointer: string): ValidateFunction {
    let validate = this.validators.get(pointer);
    if (validate === undefined) {
      validate = this.ajv.compile({ $ref: `openapi#${pointer}` });
      this.validators.set(pointer, validate);
    }
    return validate;
  }
}

let contract: OpenApiContract | null = null;
const problems: string[] = [];
const pending = new Set<Promise<void>>();

/** Checks one answer of a node; a problem is kept for takeProblems(). */
export function recordResponse(response: ObservedResponse): void {
  if (!fromGatewayNode(response.headers)) return;
  contract ??= new OpenApiContract();
  const problem = contract.problem(response);
  if (problem !== null) problems.push(problem);
  logLine(`${response.method} ${new URL(response.url).pathname} ${response.status}${problem === null ? "" : " PROBLEM"}`);
}

function logLine(line: string): void {
  const log = process.env[RESPONSE_LOG_VARIABLE];
  if (log !== undefined && log !== "") appendFileSync(log, `${line}\n`);
}

/** Node's IncomingMessage headers as one string each. */
export function flatHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  return out;
}

function headersOf(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => (out[name.toLowerCase()] = value));
  return out;
}

/** Wraps globalThis.fetch so every answer of a node is checked; once per test file. */
export function installFetchRecorder(): void {
  const original = globalThis.fetch;
  if ((original as { recorded?: boolean }).recorded === true) return;
  const recorded = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const res = await original(input, init);
    const headers = headersOf(res.headers);
    if (!fromGatewayNode(headers)) return res;
    const method = init?.method ?? (input instanceof Request ? input.method : "GET");
    const url = input instanceof Request ? input.url : String(input);
    const json = (headers["content-type"] ?? "").startsWith("application/json");
    if (!json || res.body === null) {
      recordResponse({ method, url, status: res.status, headers, body: null });
      return res;
    }
    // The copy is read in the background: the caller may read its own later, or never.
    const copy = res.clone();
    const check = copy.text().then(
      (body) => recordResponse({ method, url, status: res.status, headers, body }),
      // The caller aborted the request, or the connection dropped: nothing was answered to check.
      (err: unknown) => logLine(`${method} ${new URL(url).pathname} ${res.status} UNREAD ${String(err).slice(0, 80)}`),
    );
    pending.add(check);
    void check.finally(() => pending.delete(check));
    return res;
  };
  globalThis.fetch = Object.assign(recorded, { recorded: true });
}

/** Waits for the checks under way, then hands over (and forgets) the problems found so far. */
export async function takeProblems(): Promise<string[]> {
  while (pending.size > 0) await Promise.allSettled([...pending]);
  return problems.splice(0);
}
