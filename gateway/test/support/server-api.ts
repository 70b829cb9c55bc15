/**
 * One call to a node's HTTP API with the publish key (or another), answered
 * as status and parsed JSON. Goes through fetch, so the OpenAPI recorder
 * (support/openapi-recorder.ts) checks the answer like every other.
 */

import { TEST_PUBLISH_KEY } from "./gateway-node.js";

export interface ApiAnswer {
  readonly status: number;
  readonly json: unknown;
}

export async function apiCall(baseUrl: string, method: "GET" | "POST", path: string, body?: unknown, key: string = TEST_PUBLISH_KEY): Promise<ApiAnswer> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text.length > 0 ? (JSON.parse(text) as unknown) : null };
}
