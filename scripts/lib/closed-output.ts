/**
 * Once the terminal is closed, every write to it fails with EIO (EPIPE when the output went
 * into a pipe whose reader quit), reported as an 'error' event that would crash the process
 * by default. npm start and its watchdog are still stopping children at that moment, and
 * losing their output is the lesser harm; any other error stays fatal.
 */
export function tolerateClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EIO" || err.code === "EPIPE" || err.code === "ERR_STREAM_DESTROYED") return;
      throw err;
    });
  }
}
