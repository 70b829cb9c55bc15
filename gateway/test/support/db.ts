/**
 * A pg pool for tests that read what the gateway wrote. pg-pool resolves
 * end() before its clients' sockets are closed, so a Postgres stopped right
 * after can still notify those closing clients ("terminating connection due
 * to administrator command"); without a listener that surfaces as an
 * unhandled error of the test run.
 */

import pg from "pg";

export function testPool(connectionString: string, max = 2): pg.Pool {
  const pool = new pg.Pool({ connectionString, max });
  const note = (err: Error): void => {
    if ((err as Error & { code?: string }).code !== "57P01") process.stderr.write(`test pg client error: ${err.message}\n`);
  };
  pool.on("error", note);
  pool.on("connect", (client) => client.on("error", note));
  return pool;
}
