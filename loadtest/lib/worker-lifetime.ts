/**
 * How a load generator worker ends: when its controller asks, after closing its
 * clients, or with its controller, so a crashed or interrupted run leaves no
 * process holding sockets.
 */

/** Closes every client, tells the controller (`closed`), then exits 0. */
export function closeClientsThenExit(clients: ReadonlyArray<{ close(): Promise<unknown> }>, sayClosed: () => void): void {
  void Promise.all(clients.map((client) => client.close())).then(() => {
    sayClosed();
    process.exit(0);
  });
}

/** The controller went away (finished, crashed or Ctrl-C): never outlive it. */
export function exitWithController(): void {
  process.on("disconnect", () => process.exit(0));
}
