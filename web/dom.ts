/** Small DOM helpers the page's views share. */

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`page is missing #${id}`);
  return element as T;
}

type Attributes = Readonly<Record<string, string>>;

/** An element with attributes (`class`, `data-*`, aria-*, …) and text or element children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attributes: Attributes = {}, ...children: ReadonlyArray<Node | string>): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

/** Keeps a list to its newest `max` items (newest first). */
export function trimList(list: HTMLElement, max: number): void {
  while (list.children.length > max) list.lastElementChild?.remove();
}

/**
 * Says `text` to screen readers through one polite live region: round
 * changes, the result, settled bets. Each sentence is a new node, so one
 * said right after another is queued rather than replacing it; the region
 * keeps the last few.
 */
export function announce(text: string): void {
  const region = byId("announcer");
  region.append(h("p", {}, text));
  while (region.children.length > 3) region.firstElementChild?.remove();
}

const amountFormat = new Intl.NumberFormat("en");

/** Amounts are integer minor units; shown with thousands separators. */
export function formatAmount(amount: number): string {
  return amountFormat.format(amount);
}

export function formatOdds(odds: number): string {
  return odds.toFixed(2);
}

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

/** Asked on every frame: the query object follows the setting as it changes. */
export function prefersReducedMotion(): boolean {
  return reducedMotion.matches;
}
