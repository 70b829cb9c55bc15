/**
 * Keeps every channel this node serves gapless and in order. Redis pub/sub is
 * at most once: a subscriber connection that drops, or a message Redis could
 * not hand over, loses deliveries without a word. Offsets make the loss
 * visible; history makes it repairable.
 *
 * Per channel the sequencer knows the offset it last forwarded to local
 * sockets and its epoch, from the moment the node subscribes (seeded from
 * Redis, so that moment is a definite position). Then for each delivery:
 * - the next offset: forwarded;
 * - an offset already forwarded: dropped (a repeat after a repair);
 * - a later offset: a gap. Later deliveries are held, the missing ones are
 *   read from history and forwarded first, then the held ones, in order;
 * - another epoch: the channel's numbering was reset. What came before is
 *   gone, but the new epoch is in history from offset 1: it is forwarded from
 *   there, so what was published before this node noticed (its subscriber was
 *   still reconnecting to a Redis that restarted empty) reaches its sockets.
 * When history no longer holds what is missing (or the epoch changed), the
 * channel's local subscribers get a gap notice (docs/protocol.md: `gap`), so
 * clients resubscribe with `since` and learn `recovered: false`.
 *
 * After the subscriber connection comes back, catchUpAll() compares every
 * channel with Redis, so a message lost during the outage is repaired even
 * when nothing is published after it; and a channel whose Redis offset fell
 * below what was forwarded (a failover lost the newest writes) is reported
 * as a gap, so its subscribers resync rather than take new messages under
 * reused offsets for repeats.
 */

import type { Logger } from "pino";
import type { Broker, Delivery } from "../broker/broker.js";
import { RetryBackoff } from "../time/retry-backoff.js";
import { coversFrom, type ChannelPosition, type History, type HistorySlice } from "./history.js";

export type GapReason = "history_lost" | "epoch_changed" | "unavailable";

/** What a channel's local subscribers are told when continuity broke on this node. */
export interface GapNotice {
  readonly channel: string;
  /** The last offset forwarded to them before the gap, in `epoch`. */
  readonly offset: number;
  readonly epoch: string;
  readonly reason: GapReason;
}

/** What the sequencer records, per channel; the metrics decide the label (see metrics/metric-namespaces.ts). */
export interface SequencerMetrics {
  /** A delivery arrived past the next expected offset (or after a reconnect, the channel was behind). */
  gapDetected(channel: string): void;
  /** A gap was closed from history with `messages` messages. */
  gapRepaired(channel: string, messages: number): void;
  gapUnrecoverable(channel: string, reason: GapReason): void;
  duplicateDropped(channel: string): void;
}

export interface ChannelSequencerOptions {
  readonly history: Pick<History, "since">;
  /** Hands an in-order delivery to local sockets (LocalFanout.deliver). Must not throw. */
  readonly forward: (delivery: Delivery) => void;
  /** Tells a channel's local subscribers that they missed messages that cannot be replayed. */
  readonly signalGap: (notice: GapNotice) => void;
  readonly metrics: SequencerMetrics;
  readonly log: Logger;
  /** Most messages read from history to close one gap; a larger gap is unrecoverable. */
  readonly repairLimit: number;
  /** Most deliveries held per channel while a gap is repaired; past it the repair is abandoned. */
  readonly maxHeld: number;
  /** Channels whose history reads run at once during catchUpAll(). */
  readonly catchUpConcurrency: number;
  /** Attempts at reading history for one repair before its subscribers are told to resync. */
  readonly readAttempts: number;
  /** Waits between those attempts (injectable for tests). */
  readonly pause: (ms: number) => Promise<void>;
}

/** Between history read attempts: 100 ms doubling to 2 s, full jitter (about 4 s over eight attempts). */
const READ_BACKOFF = { initialDelayMs: 100, maxDelayMs: 2000 };

/** The position a channel has before its seed is read: accept the next delivery as the baseline. */
const UNKNOWN = -1;

interface Track {
  epoch: string;
  /** Last offset forwarded, or UNKNOWN. */
  offset: number;
  /** Deliveries held while the channel is seeded or repaired; null when flowing. */
  held: Delivery[] | null;
  /** Bumped whenever a read in flight must be ignored (abandoned or untracked). */
  generation: number;
}

export class ChannelSequencer {
  private readonly tracks = new Map<string, Track>();

  constructor(private readonly options: ChannelSequencerOptions) {}

  /**
   * Wraps the broker's subscribe/unsubscribe so a channel is tracked exactly
   * while the node is subscribed; hand this to the hub instead of the broker.
   */
  subscriptions(broker: Pick<Broker, "subscribe" | "unsubscribe">): Pick<Broker, "subscribe" | "unsubscribe"> {
    return {
      subscribe: async (channel) => {
        const track = this.startTracking(channel);
        try {
          await broker.subscribe(channel);
          await this.seed(channel, track);
        } catch (err) {
          if (this.tracks.get(channel) === track) this.tracks.delete(channel);
          throw err;
        }
      },
      unsubscribe: (channel) => {
        const track = this.tracks.get(channel);
        if (track !== undefined) track.generation++;
        this.tracks.delete(channel);
        return broker.unsubscribe(channel);
      },
    };
  }

  /** The position this node's sockets of `channel` have been given; null when not yet known. */
  position(channel: string): ChannelPosition | null {
    const track = this.tracks.get(channel);
    if (track === undefined || track.offset === UNKNOWN) return null;
    return { offset: track.offset, epoch: track.epoch };
  }

  /** Channels tracked now. */
  size(): number {
    return this.tracks.size;
  }

  onDelivery(delivery: Delivery): void {
    const track = this.tracks.get(delivery.channel);
    // Not subscribed (any more): nobody here expects it in order.
    if (track === undefined) return this.options.forward(delivery);
    if (track.held !== null) return this.hold(delivery, track);
    this.sequence(delivery, track);
  }

  /** Compares every tracked channel with its history and repairs what fell behind; for after a reconnect. */
  async catchUpAll(): Promise<void> {
    const channels = [...this.tracks.keys()];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < channels.length) {
        const channel = channels[next++] as string;
        const track = this.tracks.get(channel);
        if (track !== undefined && track.held === null && track.offset !== UNKNOWN) await this.repair(channel, track, false);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.catchUpConcurrency, channels.length) }, worker));
  }

  private startTracking(channel: string): Track {
    const existing = this.tracks.get(channel);
    if (existing !== undefined) return existing;
    const track: Track = { epoch: "", offset: UNKNOWN, held: [], generation: 0 };
    this.tracks.set(channel, track);
    return track;
  }

  /**
   * Reads the channel's position once the node is subscribed: every message
   * after it will arrive here, so it is the position new subscribers start
   * from. Deliveries that arrived meanwhile and are not after it are dropped.
   */
  private async seed(channel: string, track: Track): Promise<void> {
    if (track.held === null) return;
    const generation = track.generation;
    const slice = await this.options.history.since(channel, Number.MAX_SAFE_INTEGER, 0);
    if (track.generation !== generation || this.tracks.get(channel) !== track) return;
    track.epoch = slice.position.epoch;
    track.offset = slice.position.offset;
    this.release(track);
  }

  private sequence(delivery: Delivery, track: Track): void {
    if (track.offset === UNKNOWN) return this.adopt(delivery, track);
    if (delivery.epoch !== track.epoch) {
      this.unrecoverable(delivery.channel, track, "epoch_changed");
      track.epoch = delivery.epoch;
      track.offset = 0;
      if (delivery.offset === 1) return this.adopt(delivery, track);
      track.held = [delivery];
      void this.repair(delivery.channel, track, true);
      return;
    }
    if (delivery.offset <= track.offset) {
      this.options.metrics.duplicateDropped(delivery.channel);
      return;
    }
    if (delivery.offset === track.offset + 1) {
      track.offset = delivery.offset;
      this.options.forward(delivery);
      return;
    }
    this.options.metrics.gapDetected(delivery.channel);
    this.options.log.warn({ channel: delivery.channel, expected: track.offset + 1, got: delivery.offset }, "gap in channel offsets; repairing from history");
    track.held = [delivery];
    void this.repair(delivery.channel, track, true);
  }

  private adopt(delivery: Delivery, track: Track): void {
    track.epoch = delivery.epoch;
    track.offset = delivery.offset;
    this.options.forward(delivery);
  }

  private hold(delivery: Delivery, track: Track): void {
    const held = track.held as Delivery[];
    if (held.length < this.options.maxHeld) {
      held.push(delivery);
      return;
    }
    // Holding more would grow without bound: give up on this gap.
    track.generation++;
    track.held = null;
    if (track.offset !== UNKNOWN) this.unrecoverable(delivery.channel, track, "history_lost");
    track.offset = UNKNOWN;
    this.sequence(delivery, track);
  }

  /**
   * Forwards what history holds after the track's offset, then whatever was
   * held meanwhile. `gapSeen`: a delivery already showed the gap (counted);
   * otherwise this is a check that counts a gap only if it finds one.
   */
  private async repair(channel: string, track: Track, gapSeen: boolean, epochRestarted = false): Promise<void> {
    if (track.held === null) track.held = [];
    const generation = track.generation;
    const slice = await this.readHistory(channel, track, generation);
    if (slice === null || track.generation !== generation || this.tracks.get(channel) !== track) return;
    const behind = slice.position.epoch !== track.epoch || slice.position.offset > track.offset;
    if (behind && !gapSeen) this.options.metrics.gapDetected(channel);
    if (slice.position.epoch !== track.epoch) {
      this.unrecoverable(channel, track, "epoch_changed");
      track.epoch = slice.position.epoch;
      // The slice was read after the old epoch's offset: read the new epoch from its start
      // (once; should the epoch change again meanwhile, go on from where it stands).
      if (!epochRestarted) {
        track.offset = 0;
        return this.repair(channel, track, true, true);
      }
      track.offset = slice.position.offset;
    } else if (slice.position.offset < track.offset) {
      // Redis holds fewer messages than this node forwarded: it lost the
      // newest (a failover to a replica they had not reached, an AOF restart
      // that lost its last second). New messages will take those offsets
      // again, so the subscribers resync instead of dropping them as repeats.
      this.options.log.warn({ channel, forwarded: track.offset, redis: slice.position.offset }, "redis lost messages this node forwarded");
      this.unrecoverable(channel, track, "history_lost");
      track.offset = slice.position.offset;
    } else if (coversFrom(slice, track.offset)) {
      const repaired = this.forwardRun(slice, track);
      if (behind) {
        this.options.metrics.gapRepaired(channel, repaired);
        this.options.log.info({ channel, repaired, offset: track.offset }, "gap repaired from history");
      }
    } else {
      this.unrecoverable(channel, track, "history_lost");
      // Subscribers were told; what history still holds after the hole goes
      // on in order, so a client that ignores the notice loses no more.
      const resumeAt = slice.messages[0]?.offset ?? track.held?.[0]?.offset ?? slice.position.offset + 1;
      track.offset = resumeAt - 1;
      this.forwardRun(slice, track);
    }
    this.release(track);
  }

  /**
   * Reads what history holds after the track's offset, retrying with backoff:
   * right after a reconnect the history connection may still be coming back.
   * When every attempt fails, nobody can say what was missed, so the
   * channel's subscribers are told to resync (`unavailable`) and the next
   * delivery becomes the baseline. Null then, or when the read was abandoned.
   */
  private async readHistory(channel: string, track: Track, generation: number): Promise<HistorySlice | null> {
    const backoff = new RetryBackoff(READ_BACKOFF);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.options.history.since(channel, track.offset, this.options.repairLimit);
      } catch (err) {
        if (track.generation !== generation) return null;
        if (attempt >= this.options.readAttempts) {
          this.options.log.error({ err, channel, attempts: attempt }, "history read failed; channel subscribers told to resync");
          this.unrecoverable(channel, track, "unavailable");
          track.offset = UNKNOWN;
          this.release(track);
          return null;
        }
        await this.options.pause(backoff.next());
        if (track.generation !== generation) return null;
      }
    }
  }

  /** Forwards the slice's messages that continue the track's offset; returns how many. */
  private forwardRun(slice: HistorySlice, track: Track): number {
    let forwarded = 0;
    for (const message of slice.messages) {
      if (message.offset !== track.offset + 1) continue;
      track.offset = message.offset;
      this.options.forward(message);
      forwarded++;
    }
    return forwarded;
  }

  /** Replays held deliveries through the normal rules, in arrival order; a new gap holds the rest again. */
  private release(track: Track): void {
    const held = track.held ?? [];
    track.held = null;
    for (let i = 0; i < held.length; i++) {
      this.sequence(held[i] as Delivery, track);
      // sequence() may have found a new gap and started holding again.
      const holding = track.held as Delivery[] | null;
      if (holding !== null) {
        holding.push(...held.slice(i + 1));
        return;
      }
    }
  }

  private unrecoverable(channel: string, track: Track, reason: GapReason): void {
    this.options.metrics.gapUnrecoverable(channel, reason);
    this.options.log.warn({ channel, offset: track.offset, epoch: track.epoch, reason }, "messages lost for this channel's local subscribers; telling them to resync");
    this.options.signalGap({ channel, offset: track.offset, epoch: track.epoch, reason });
  }
}
