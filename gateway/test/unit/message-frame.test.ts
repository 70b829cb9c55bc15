import { describe, expect, it } from "vitest";
import { encodeFrameHead, encodeFrameTail, readFrameEnvelope } from "../../src/fanout/message-frame.js";

function frame(channel: string, data: string, offset = 7, epoch = "Ab_-9z", ts = 1732350000000): Buffer {
  return Buffer.from(encodeFrameHead(channel, "forecast_update", data) + encodeFrameTail(offset, epoch, ts));
}

describe("readFrameEnvelope", () => {
  it("reads offset, epoch and ts of a frame for its own channel", () => {
    expect(readFrameEnvelope("race", frame("race", '{"x":1}'))).toEqual({ offset: 7, epoch: "Ab_-9z", ts: 1732350000000 });
  });

  it("reads the script's tail, not an offset-like key inside data", () => {
    const data = '{"offset":99,"epoch":"zz","ts":1}';
    expect(readFrameEnvelope("race", frame("race", data, 3))).toEqual({ offset: 3, epoch: "Ab_-9z", ts: 1732350000000 });
  });

  it("refuses frames for another channel, without a tail, or that are not frames at all", () => {
    expect(readFrameEnvelope("race", frame("user:alice", "1"))).toBeNull();
    expect(readFrameEnvelope("race", Buffer.from(encodeFrameHead("race", "x", "1") + '1,"epoch":"e"}'))).toBeNull();
    expect(readFrameEnvelope("race", Buffer.from(encodeFrameHead("race", "x", "1") + '1,"epoch":"e\\"","ts":1}'))).toBeNull();
    for (const junk of ["", "garbage", "{}", '{"type":"message"}']) expect(readFrameEnvelope("race", Buffer.from(junk))).toBeNull();
  });
});
