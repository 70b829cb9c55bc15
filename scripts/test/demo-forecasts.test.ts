/**
 * npm start's demo forecast feed: bounded, labelled made-up values, published
 * through the publish API with at most one request in flight, and stopped
 * for good by stop(). The feed against a real cluster is in
 * start-after-crash.test.ts; here a local HTTP server stands in for the
 * publish API so a test can hold a request open.
 */

import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { eventually } from "../../gateway/test/support/eventually.js";
import { DEMO_ASSETS, DEMO_SOURCE, nextForecasts, startDemoForecasts, type DemoFeed } from "../lib/demo-forecasts.js";

describe("nextForecasts", () => {
  it("walks every asset from its last value in small steps, within 0.05..0.95, labelled as demo data", () => {
    let seed = 7;
    const random = (): number => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    const last = new Map<string, number>();
    for (let tick = 0; tick < 2000; tick++) {
      const forecasts = nextForecasts(last, 1000 + tick, random);
      expect(forecasts.map((f) => f.asset)).toEqual(DEMO_ASSETS);
      for (const forecast of forecasts) {
        expect(forecast).toMatchObject({ at: 1000 + tick, demo: true, source: DEMO_SOURCE });
        expect(forecast.p).toBeGreaterThanOrEqual(0.05);
        expect(forecast.p).toBeLessThanOrEqual(0.95);
        const previous = last.get(forecast.asset);
        if (previous !== undefined) expect(Math.abs(forecast.p - previous)).toBeLessThanOrEqual(0.0205);
        last.set(forecast.asset, forecast.p);
      }
    }
  });

  it("hits the bounds instead of leaving them", () => {
    expect(nextForecasts(new Map([["BTC", 0.95]]), 0, () => 1)[0]!.p).toBe(0.95);
    expect(nextForecasts(new Map([["BTC", 0.05]]), 0, () => 0)[0]!.p).toBe(0.05);
  });
});

describe("startDemoForecasts", () => {
  let feed: DemoFeed | undefined;
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await feed?.stop();
    await close?.();
  });

  it("publishes a batch to `forecasts` per tick, never two at once, says a failure once, and stops", async () => {
    const bodies: unknown[] = [];
    const requests: string[] = [];
    let open = 0;
    let mostOpen = 0;
    let failNext = 0;
    const held: Array<() => void> = [];
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let text = "";
      req.on("data", (chunk: Buffer) => (text += chunk.toString()));
      req.on("end", () => {
        open++;
        mostOpen = Math.max(mostOpen, open);
        requests.push(`${req.method} ${req.url} ${req.headers.authorization}`);
        bodies.push(JSON.parse(text));
        // Answered 250 ms later: ticks every 20 ms meanwhile must be skipped, not queued.
        held.push(() => {
          open--;
          if (failNext > 0) {
            failNext--;
            res.writeHead(503).end('{"error":{"code":"unavailable"}}');
          } else res.writeHead(200).end('{"offsets":[]}');
        });
        setTimeout(() => held.shift()?.(), 250);
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    close = () => new Promise((resolve) => server.close(() => resolve()));
    const said: string[] = [];
    failNext = 2;
    feed = startDemoForecasts({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, publishKey: "demo-key", intervalMs: 20, say: (m) => said.push(m) });

    await eventually(async () => bodies.length, (n) => n >= 4, 5000);
    await feed.stop();
    const published = bodies.length;
    expect(mostOpen).toBe(1);
    expect(new Set(requests)).toEqual(new Set(["POST /v1/publish Bearer demo-key"]));
    expect(bodies[0]).toEqual({
      messages: DEMO_ASSETS.map((asset) => ({ channel: "forecasts", event: "forecast_update", data: expect.objectContaining({ asset, demo: true }) })),
    });
    // Two failures in a row are one line, and the recovery another.
    expect(said).toEqual([expect.stringMatching(/^demo feed: publish failed \(HTTP 503 /), "demo feed: publishing again"]);

    // Stopped: nothing more arrives. An absence can only be watched for a while: 15 intervals.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(bodies.length).toBe(published);
  });
});
