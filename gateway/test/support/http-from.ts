/**
 * One HTTP GET from a chosen local address, so a test on loopback can be an
 * outsider (127.0.0.2) or an operator (127.0.0.1) to an NGINX that tells them
 * apart by the connection's address. The path goes out exactly as given,
 * percent-encodings and dot segments included (fetch would normalise them).
 */

import http from "node:http";
import { flatHeaders, recordResponse } from "./openapi-recorder.js";

export interface Answer {
  readonly status: number;
  readonly body: string;
  readonly headers: http.IncomingHttpHeaders;
}

export function getFrom(baseUrl: string, rawPath: string, localAddress: string, headers: Readonly<Record<string, string>> = {}): Promise<Answer> {
  const base = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, path: rawPath, method: "GET", localAddress, headers, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        recordResponse({ method: "GET", url: `${base.origin}${rawPath}`, status: res.statusCode ?? 0, headers: flatHeaders(res.headers), body });
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${rawPath} from ${localAddress}: no answer within 5 s`)));
    req.on("error", reject);
    req.end();
  });
}
