import net from "node:net";

/**
 * Asks the kernel for an unused TCP port by binding port 0.
 * There is an unavoidable race between closing this probe socket and the caller binding the
 * port; callers that start a server on it should retry on EADDRINUSE rather than assume success.
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error(`could not read the port bound on ${host}`));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/**
 * True when `port` can be bound on `host` right now. The default "0.0.0.0" is deliberate:
 * binding the wildcard address conflicts with a listener on any IPv4 address (and with a
 * dual-stack "::" listener), so it catches more "port already taken" cases than 127.0.0.1.
 */
export function isPortFree(port: number, host = "0.0.0.0"): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE" || err.code === "EACCES") resolve(false);
      else reject(err);
    });
    server.listen({ port, host, exclusive: true }, () => {
      server.close((err) => (err ? reject(err) : resolve(true)));
    });
  });
}

/** `preferred` when it is free, otherwise a kernel-chosen free port. */
export async function preferredOrFreePort(preferred: number, host = "127.0.0.1"): Promise<number> {
  return (await isPortFree(preferred)) ? preferred : freePort(host);
}
