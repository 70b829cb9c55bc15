/**
 * The portfolio panel: the latest `portfolio_update` on `user:<sub>`.
 * Backends send the whole state, not a delta (docs/backend-feeds.md), so the
 * panel is redrawn from each update. `cash` and `positions` get a layout of
 * their own; any other field is shown as it came.
 */

import type { JsonValue, PortfolioUpdate } from "../shared/src/client/index.js";
import { byId, formatAmount, h } from "./dom.js";

const ui = {
  panel: byId("portfolio-panel"),
  cash: byId("portfolio-cash"),
  positions: byId("portfolio-positions"),
  other: byId("portfolio-other"),
  empty: byId("portfolio-empty"),
  updated: byId("portfolio-updated"),
};

function text(value: JsonValue | undefined): string {
  if (value === undefined || value === null) return "–";
  if (typeof value === "number") return formatAmount(value);
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** A position object as `key value · key value`; anything else as it is. */
function positionText(position: JsonValue): string {
  if (typeof position !== "object" || position === null || Array.isArray(position)) return text(position);
  return Object.entries(position)
    .map(([key, value]) => `${key} ${text(value)}`)
    .join(" · ");
}

export function renderPortfolio(data: PortfolioUpdate): void {
  ui.empty.hidden = true;
  ui.panel.dataset["filled"] = "true";
  ui.cash.textContent = typeof data.cash === "number" ? formatAmount(data.cash) : "–";
  const positions = Array.isArray(data.positions) ? data.positions : [];
  ui.positions.replaceChildren(...(positions.length === 0 ? [h("li", { class: "muted" }, "no open positions")] : positions.slice(0, 20).map((p) => h("li", {}, positionText(p)))));
  ui.other.replaceChildren(
    ...Object.entries(data)
      .filter(([key]) => key !== "cash" && key !== "positions")
      .flatMap(([key, value]) => [h("dt", {}, key), h("dd", {}, text(value))]),
  );
  ui.updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
}
