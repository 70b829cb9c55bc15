/**
 * npm start's demo forecast feed, so the game screen's ticker has something
 * to show on a fresh local cluster. Development only: npm start is its only
 * caller (START_DEMO_FEED=false turns it off), and it is a backend like any
 * other: it publishes `forecast_update` to `forecasts` through the publish
 * API, never around it. Every update says `demo: true` and names its source,
 * so screens label it as demo data and nobody takes it for a real forecast.
 *
 * At most one publish is in flight (a tick that finds one still running is
 * skipped, so nothing queues up while the cluster is slow), and each gives up
 * after PUBLISH_TIMEOUT_MS.
 */

export const DEMO_SOURCE = "npm start demo feed";
export const DEMO_ASSETS: readonly string[] = ["BTC", "ETH", "SOL", "XAU"];

const PUBLISH_TIMEOUT_MS = 2000;

export interface DemoForecast {
  readonly asset: string;
  /** A made-up probability, 0.05..0.95, three decimals. */
  readonly p: number;
  readonly at: number;
  readonly demo: true;
  readonly source: typeof DEMO_SOURCE;
}

/**
 * The next value of every asset: a bounded random walk from the last one
 * (a fresh start in 0.3..0.7 for an asset not seen yet). Pure but for `random`.
 */
export function nextForecasts(last: ReadonlyMap<string, number>, now: number, random: () => number): DemoForecast[] {
  return DEMO_ASSETS.map((asset) => {
    const previous = last.get(asset) ?? 0.3 + random() * 0.4;
    const p = Math.round(Math.min(0.95, Math.max(0.05, previous + (random() - 0.5) * 0.04)) * 1000) / 1000;
    return { asset, p, at: now, demo: true, source: DEMO_SOURCE };
  });
}

export interface DemoFeedOptions {
  /** Base URL of the cluster's publish API, e.g. NGINX: http://127.0.0.1:8080. */
  readonly baseUrl: string;
  readonly publishKey: string;
  readonly intervalMs: number;
  /** One line per change between publishing and failing, not one per tick. */
  readonly say: (message: string) => void;
  readonly random?: () => number;
}

export interface DemoFeed {
  /** Stops the ticks and waits for a publish in flight; idempotent. */
  stop(): Promise<void>;
}

export function startDemoForecasts(options: DemoFeedOptions): DemoFeed {
  const random = options.random ?? Math.random;
  const last = new Map<string, number>();
  let inFlight: Promise<void> | null = null;
  let failing = false;

  async function publishOnce(): Promise<void> {
    const forecasts = nextForecasts(last, Date.now(), random);
    try {
      const res = await fetch(`${options.baseUrl}/v1/publish`, {
        method: "POST",
        headers: { authorization: `Bearer ${options.publishKey}`, "content-type": "application/json" },
        body: JSON.stringify({ messages: forecasts.map((data) => ({ channel: "forecasts", event: "forecast_update", data })) }),
        signal: AbortSignal.timeout(PUBLISH_TIMEOUT_MS),
      });
      const body = await res.text();
      if (!res.ok) throw new Error(`HTTP ${res.status} ${body.slice(0, 200)}`);
      for (const forecast of forecasts) last.set(forecast.asset, forecast.p);
      if (failing) options.say("demo feed: publishing again");
      failing = false;
    } catch (err) {
      // A node restarting or the cluster stopping: say it once, keep ticking.
      if (!failing) options.say(`demo feed: publish failed (${err instanceof Error ? err.message : String(err)}); retrying every ${options.intervalMs} ms`);
      failing = true;
    }
  }

  const tick = (): void => {
    if (inFlight !== null) return;
    inFlight = publishOnce().finally(() => {
      inFlight = null;
    });
  };
  tick();
  const timer = setInterval(tick, options.intervalMs);

  return {
    async stop() {
      clearInterval(timer);
      await inFlight;
    },
  };
}
