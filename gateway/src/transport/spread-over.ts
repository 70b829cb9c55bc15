/**
 * Calls `act` on every item, spread evenly over `windowMs` in steps of about
 * 20 ms, so closing thousands of connections does not come back as a herd of
 * reconnects.
 */
export async function spreadOver<T>(items: readonly T[], windowMs: number, act: (item: T) => void): Promise<void> {
  const steps = Math.max(1, Math.min(items.length, Math.floor(windowMs / 20)));
  const perStep = Math.ceil(items.length / steps);
  const interval = steps > 1 ? windowMs / steps : 0;
  for (let step = 0; step < steps; step++) {
    for (const item of items.slice(step * perStep, (step + 1) * perStep)) act(item);
    if (interval > 0 && step < steps - 1) await new Promise((resolve) => setTimeout(resolve, interval));
  }
}
