/**
 * Which Postgres failures are worth retrying. Connection loss, server
 * shutdown, overload and serialization conflicts pass with time; data and
 * programming errors (classes 22, 23, 42) fail the same way every time.
 */

const PERMANENT_CLASSES = ["22", "23", "42"];

export function isRetryablePgError(err: unknown): boolean {
  const code = typeof err === "object" && err !== null && "code" in err ? String((err).code) : "";
  // Node socket errors (ECONNREFUSED, ECONNRESET, ETIMEDOUT) and pg-pool's own
  // timeouts carry no SQLSTATE: the database was not reached.
  if (!/^[0-9A-Z]{5}$/.test(code)) return true;
  return !PERMANENT_CLASSES.some((cls) => code.startsWith(cls));
}
