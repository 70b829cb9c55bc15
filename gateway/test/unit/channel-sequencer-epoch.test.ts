/**
 * A channel whose numbering restarted (Redis came back empty) while this
 * node's subscriber was still away: its sockets get the gap notice, then the
 * new epoch from offset 1 out of history, then the live deliveries, each
 * once and in order. Before, they got the notice and only what followed the
 * first live delivery, so anything published in the new epoch before the
 * node re-subscribed (a round_voided, a bet_settled) never reached them.
 */

import { describe, expect, it } from "vitest";
import type { Delivery } from "../../src/broker/broker.js";
import type { History, HistorySlice } from "../../src/history/history.js";
import { subscribedSequencer, type RecordingSequencer } from "../support/recording-sequencer.js";

/** History as Redis keeps it: one epoch per channel, messages by offset. */
class MemoryHistory implements Pick<History, "since"> {
  epoch = "A";
  messages: Delivery[] = [];

  publish(epoch: string, offset: number): Delivery {
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      this.messages = [];
    }
    const delivery: Delivery = { channel: "user:ann", frame: Buffer.from(`${epoch}${offset}`), offset, epoch, ts: 0 };
    this.messages.push(delivery);
    return delivery;
  }

  since(_channel: string, since: number, limit: number): Promise<HistorySlice> {
    const last = this.messages[this.messages.length - 1]?.offset ?? 0;
    return Promise.resolve({ position: { epoch: this.epoch, offset: last }, messages: this.messages.filter((m) => m.offset > since).slice(0, limit) });
  }
}

const subscribed = (history: MemoryHistory): Promise<RecordingSequencer> => subscribedSequencer(history, "user:ann");

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("ChannelSequencer after the channel's epoch restarted", () => {
  it("forwards the new epoch from offset 1 when the first delivery it sees is later", async () => {
    const history = new MemoryHistory();
    const { seq, out } = await subscribed(history);
    seq.onDelivery(history.publish("A", 1));
    // Redis restarted: B1 and B2 were published while this node was not subscribed.
    history.publish("B", 1);
    history.publish("B", 2);
    seq.onDelivery(history.publish("B", 3));
    seq.onDelivery(history.publish("B", 4));
    await settle();
    expect(out).toEqual(["A1", "gap:epoch_changed", "B1", "B2", "B3", "B4"]);
    expect(seq.position("user:ann")).toEqual({ epoch: "B", offset: 4 });
  });

  it("does the same when the catch-up after a reconnect finds the new epoch first", async () => {
    const history = new MemoryHistory();
    const { seq, out } = await subscribed(history);
    seq.onDelivery(history.publish("A", 1));
    history.publish("B", 1);
    history.publish("B", 2);
    await seq.catchUpAll();
    seq.onDelivery(history.publish("B", 3));
    await settle();
    expect(out).toEqual(["A1", "gap:epoch_changed", "B1", "B2", "B3"]);
  });

  it("still adopts a new epoch that starts with the delivery it sees", async () => {
    const history = new MemoryHistory();
    const { seq, out } = await subscribed(history);
    seq.onDelivery(history.publish("A", 1));
    seq.onDelivery(history.publish("B", 1));
    seq.onDelivery(history.publish("B", 2));
    await settle();
    expect(out).toEqual(["A1", "gap:epoch_changed", "B1", "B2"]);
  });
});
