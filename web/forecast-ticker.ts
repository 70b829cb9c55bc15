/**
 * The forecasts ticker: the latest `forecast_update` per asset on the
 * `forecasts` channel, with its change since the one before. Backends choose
 * the payload (docs/backend-feeds.md); `asset` and `p` are the usual fields,
 * and an update marked `demo: true` (npm start's demo feed) is labelled as
 * demo data. Not a live region: updates every few seconds would drown out
 * everything else a screen reader says.
 */

import type { DeliveryMeta, ForecastUpdate } from "../shared/src/client/index.js";
import { byId, h } from "./dom.js";

/** Assets shown at most; a new one beyond replaces the one updated longest ago. */
const MAX_ASSETS = 8;

const ui = {
  list: byId("forecasts"),
  empty: byId("forecasts-empty"),
  demo: byId("ticker-demo"),
};

const latest = new Map<string, { value: number; at: number }>();

/** A probability (0..1) as a percentage, anything else as a number. */
function formatValue(value: number): string {
  return value >= 0 && value <= 1 ? `${(value * 100).toFixed(1)} %` : value.toLocaleString("en", { maximumFractionDigits: 4 });
}

/** The change as shown (an arrow) and as read out (words). */
function changeOf(change: number, probability: boolean): Node[] {
  if (change === 0) return [];
  const size = probability ? `${Math.abs(change * 100).toFixed(1)} pt` : Math.abs(change).toLocaleString("en", { maximumFractionDigits: 4 });
  return [h("span", { "aria-hidden": "true" }, `${change > 0 ? "▲" : "▼"} ${size}`), h("span", { class: "sr-only" }, `${change > 0 ? "up" : "down"} ${size}`)];
}

export function onForecast(data: ForecastUpdate, meta: DeliveryMeta): void {
  const asset = typeof data.asset === "string" && data.asset !== "" ? data.asset : meta.channel;
  if (typeof data.p !== "number" || !Number.isFinite(data.p)) return;
  const value = data.p;
  const previous = latest.get(asset);
  latest.delete(asset);
  latest.set(asset, { value, at: performance.now() });
  if (latest.size > MAX_ASSETS) {
    const [oldest] = latest.keys();
    if (oldest !== undefined) {
      latest.delete(oldest);
      ui.list.querySelector(`li[data-asset="${CSS.escape(oldest)}"]`)?.remove();
    }
  }

  ui.empty.hidden = true;
  if (data["demo"] === true) ui.demo.hidden = false;
  let item = ui.list.querySelector<HTMLLIElement>(`li[data-asset="${CSS.escape(asset)}"]`);
  if (item === null) {
    item = h("li", { "data-asset": asset });
    ui.list.append(item);
  }
  const change = previous === undefined ? 0 : value - previous.value;
  const probability = value >= 0 && value <= 1;
  item.dataset["trend"] = change > 0 ? "up" : change < 0 ? "down" : "flat";
  const when = typeof data.at === "number" ? new Date(data.at).toLocaleTimeString() : "";
  item.title = `${asset}: ${formatValue(value)}${when === "" ? "" : ` at ${when}`}${data["demo"] === true ? " (demo data)" : ""}`;
  item.replaceChildren(
    h("span", { class: "asset" }, asset),
    h("span", { class: "value" }, formatValue(value)),
    h("span", { class: "change" }, ...changeOf(change, probability)),
  );
  // Restarts the highlight (CSS; none with reduced motion).
  item.classList.remove("changed");
  void item.offsetWidth;
  item.classList.add("changed");
}
