/**
 * This node's open sessions by user, on both transports, so a command about
 * a user (disconnect, revoke) reaches each of their sockets here without a
 * scan. Most users hold one socket per node: that one is stored bare, and a
 * set only for users with more, to keep the per-connection cost small.
 */

/** What the index needs of a session. */
export interface IndexedSession {
  readonly principal: { readonly sub: string };
}

export class SessionIndex<Session extends IndexedSession = IndexedSession> {
  private readonly byUser = new Map<string, Session | Set<Session>>();
  private count = 0;

  add(session: Session): void {
    const user = session.principal.sub;
    const held = this.byUser.get(user);
    if (held === undefined) this.byUser.set(user, session);
    else if (held instanceof Set) {
      if (held.has(session)) return;
      held.add(session);
    } else if (held !== session) this.byUser.set(user, new Set([held, session]));
    else return;
    this.count++;
  }

  remove(session: Session): void {
    const user = session.principal.sub;
    const held = this.byUser.get(user);
    if (held === undefined) return;
    if (held instanceof Set) {
      if (!held.delete(session)) return;
      if (held.size === 1) this.byUser.set(user, held.values().next().value as Session);
    } else if (held === session) {
      this.byUser.delete(user);
    } else {
      return;
    }
    this.count--;
  }

  /** A copy: closing a session removes it from the index while the caller iterates. */
  sessionsOf(user: string): Session[] {
    const held = this.byUser.get(user);
    if (held === undefined) return [];
    return held instanceof Set ? [...held] : [held];
  }

  /** Open sessions on this node, both transports. */
  get size(): number {
    return this.count;
  }
}
