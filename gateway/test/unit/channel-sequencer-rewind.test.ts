/**
 * A failover to a replica that had not received the newest writes leaves
 * Redis behind what a node already forwarded: the same offsets are then
 * taken again by other messages. The catch-up after the reconnect must tell
 * the channel's subscribers (so they resync) and forward the new messages,
 * not drop them as repeats of offsets they already hold.
 */

import { describe, expect, it } from "vitest";
import type { Delivery } from "../../src/broker/broker.js";
import type { History, HistorySlice } from "../../src/history/history.js";
import { subscribedSequencer, type RecordingSequencer } from "../support/recording-sequencer.js";

class MemoryHistory implements Pick<History, "since"> {
  messages: Delivery[] = [];

  publish(name: string, offset: number): Delivery {
    const delivery: Delivery = { channel: "forecasts", frame: Buffer.from(name), offset, epoch: "E", ts: 0 };
    this.messages.push(delivery);
    return delivery;
  }

  /** What a promoted replica holds: everything up to `offset`. */
  rewindTo(offset: number): void {
    this.messages = this.messages.filter((m) => m.offset <= offset);
  }

  since(_channel: string, since: number, limit: number): Promise<HistorySlice> {
    const last = this.messages[this.messages.length - 1]?.offset ?? 0;
    return Promise.resolve({ position: { epoch: "E", offset: last }, messages: this.messages.filter((m) => m.offset > since).slice(0, limit) });
  }
}

const subscribed = (history: MemoryHistory): Promise<RecordingSequencer> => subscribedSequencer(history, "forecasts");

describe("ChannelSequencer when Redis lost messages it had forwarded", () => {
  it("tells the subscribers at the catch-up and forwards the messages that take those offsets again", async () => {
    const history = new MemoryHistory();
    const { seq, out, notices } = await subscribed(history);
    for (const [name, offset] of [["a", 1], ["b", 2], ["c", 3]] as const) seq.onDelivery(history.publish(name, offset));
    // The new master only had a and b.
    history.rewindTo(2);
    await seq.catchUpAll();
    seq.onDelivery(history.publish("x", 3));
    seq.onDelivery(history.publish("y", 4));
    expect(out).toEqual(["a", "b", "c", "gap:history_lost", "x", "y"]);
    // The notice names the last offset the subscribers were given.
    expect(notices).toEqual([{ channel: "forecasts", offset: 3, epoch: "E", reason: "history_lost" }]);
    expect(seq.position("forecasts")).toEqual({ epoch: "E", offset: 4 });
  });

  it("says nothing when Redis holds everything that was forwarded", async () => {
    const history = new MemoryHistory();
    const { seq, out } = await subscribed(history);
    seq.onDelivery(history.publish("a", 1));
    await seq.catchUpAll();
    seq.onDelivery(history.publish("b", 2));
    expect(out).toEqual(["a", "b"]);
  });
});
