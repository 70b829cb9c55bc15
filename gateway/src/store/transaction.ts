/**
 * One way to run a transaction on a pooled client. pg removes the pool's
 * error listener while a client is checked out, so a connection that dies
 * between two statements emits 'error' on the client and, unheard, kills the
 * process; the listener here keeps it and makes release() destroy that client
 * instead of returning it to the pool.
 */

import type pg from "pg";

export async function withTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let lost: Error | undefined;
  const onError = (err: Error): void => {
    lost = err;
  };
  client.on("error", onError);
  try {
    await client.query("BEGIN");
    const result = await work(client);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    if (lost === undefined) {
      await client.query("ROLLBACK").catch((rollbackError: Error) => {
        lost = rollbackError;
      });
    }
    throw err;
  } finally {
    client.removeListener("error", onError);
    client.release(lost);
  }
}
