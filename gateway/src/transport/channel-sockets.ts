/**
 * The local sockets of channels that a transport routes itself instead of
 * through uWS topics: personal channels (`user:…`). Each has one socket, or
 * a few (one user's devices on this node). A uWS topic is a native structure
 * of its own, ~380 bytes per channel measured against bare uWS
 * (docs/performance.md), for what is here one Map entry of ~50 bytes that
 * shares its key with the channel hub's.
 *
 * Sockets are objects (never arrays): a channel maps to its one socket, or to
 * an array of them once it has several.
 */

export class ChannelSockets<Socket extends object> {
  private readonly channels = new Map<string, Socket | Socket[]>();

  add(channel: string, socket: Socket): void {
    const current = this.channels.get(channel);
    if (current === undefined) this.channels.set(channel, socket);
    else if (Array.isArray(current)) {
      if (!current.includes(socket)) current.push(socket);
    } else if (current !== socket) this.channels.set(channel, [current, socket]);
  }

  remove(channel: string, socket: Socket): void {
    const current = this.channels.get(channel);
    if (current === undefined) return;
    if (!Array.isArray(current)) {
      if (current === socket) this.channels.delete(channel);
      return;
    }
    const at = current.indexOf(socket);
    if (at === -1) return;
    current.splice(at, 1);
    if (current.length === 1) this.channels.set(channel, current[0] as Socket);
  }

  /**
   * Calls `deliver` for each socket of `channel` and returns how many there
   * were. Safe when `deliver` ends up removing sockets (a send that closes a
   * socket past its backpressure limit): it walks a copy.
   */
  forEach(channel: string, deliver: (socket: Socket) => void): number {
    const current = this.channels.get(channel);
    if (current === undefined) return 0;
    if (!Array.isArray(current)) {
      deliver(current);
      return 1;
    }
    const sockets = [...current];
    for (const socket of sockets) deliver(socket);
    return sockets.length;
  }

  /** Channels with at least one socket. */
  size(): number {
    return this.channels.size;
  }
}
