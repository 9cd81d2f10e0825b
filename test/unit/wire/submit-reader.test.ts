import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import {
  type SubmitBatchRequest,
  SubmitBatchRequestSchema,
} from "../../../gen/batchprocessor/v1/batch_processor_pb.js";
import {
  decodeSubmitBatchRequest,
  type SubmitBatchInput,
  unpackSubmit,
} from "../../../src/wire/submit-reader.js";

type Init = MessageInitShape<typeof SubmitBatchRequestSchema>;

/** What the reader must agree with: protobuf-es's own decode, inputs read through unpackSubmit. */
function plain(request: SubmitBatchInput): SubmitBatchRequest {
  const { message, inputOf } = unpackSubmit(request);
  return {
    ...message,
    data: message.data.map((item, k) => ({ ...item, input: Array.from(inputOf(k)) })),
  };
}

function both(bytes: Uint8Array) {
  return {
    fast: plain(decodeSubmitBatchRequest(bytes)),
    reference: plain(fromBinary(SubmitBatchRequestSchema, bytes)),
  };
}

const encode = (init: Init) =>
  toBinary(SubmitBatchRequestSchema, create(SubmitBatchRequestSchema, init));

describe("decodeSubmitBatchRequest", () => {
  it("reads every field as fromBinary does, with inputs as float32", () => {
    const bytes = encode({
      data: [
        { input: [1.5, -2.25, 3e-8, 1e30], requestId: "a", shape: [2, 2] },
        { input: [0.1, 0.2], requestId: "b" },
        { requestId: "no-input" },
        { input: [7] },
      ],
      priority: "high",
      batchId: "batch-1",
      timeoutMs: 1234,
      metadata: { model_id: "m", nested: { list: [1, "two", true, null] } },
    });
    const { fast, reference } = both(bytes);
    expect(fast).toEqual(reference);
    const decoded = decodeSubmitBatchRequest(bytes);
    const { inputOf } = unpackSubmit(decoded);
    expect(inputOf(0)).toBeInstanceOf(Float32Array);
    expect(Array.from(inputOf(1))).toEqual([Math.fround(0.1), Math.fround(0.2)]);
    // One allocation per request: the items' inputs are consecutive views of one buffer.
    const views = decoded.inputs.filter((v): v is Float32Array => v !== undefined && v.length > 0);
    expect(new Set(views.map((v) => v.buffer)).size).toBe(1);
    for (let k = 1; k < views.length; k++) {
      const [a, b] = [views[k - 1] as Float32Array, views[k] as Float32Array];
      expect(b.byteOffset).toBe(a.byteOffset + a.byteLength);
    }
    // The message itself stays a valid SubmitBatchRequest with the inputs moved out of it.
    expect(decoded.message.data[0]?.input).toEqual([]);
  });

  it("refuses metadata far too large to be valid before decoding it", () => {
    const bytes = encode({
      data: [{ input: [1] }],
      metadata: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`key${i}`, i])),
    });
    expect(() => decodeSubmitBatchRequest(bytes)).toThrow(
      /^metadata: is larger than the 16384 bytes allowed as JSON$/,
    );
  });

  it("agrees with fromBinary on random messages", () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 200; round++) {
      const items = Math.floor(random() * 6);
      const bytes = encode({
        data: Array.from({ length: items }, (_, k) => ({
          input: Array.from({ length: Math.floor(random() * 40) }, () => (random() - 0.5) * 1e6),
          requestId: random() < 0.5 ? `r${k}` : "",
          shape: random() < 0.3 ? [1] : [],
        })),
        priority: random() < 0.5 ? "low" : "",
        timeoutMs: Math.floor(random() * 300_000),
        metadata: random() < 0.5 ? { model_id: `m${round}` } : undefined,
      });
      const { fast, reference } = both(bytes);
      expect(fast).toEqual(reference);
    }
  });

  it("keeps unknown fields and fields written in any order", () => {
    const w = new BinaryWriter();
    w.tag(99, 0).uint32(5); // unknown top-level field
    w.tag(2, 2).string("low");
    w.tag(1, 2).fork();
    w.tag(2, 2).string("x"); // request_id before input
    w.tag(1, 2).fork().float(1).float(2).join();
    w.tag(42, 5).fixed32(9); // unknown item field
    w.join();
    const bytes = w.finish();
    const { fast, reference } = both(bytes);
    expect(fast).toEqual(reference);
    expect(fast.data[0]?.input).toEqual([1, 2]);
  });

  it("falls back to fromBinary for unpacked floats and split runs", () => {
    const unpacked = new BinaryWriter();
    unpacked.tag(1, 2).fork().tag(1, 5).float(1.5).tag(1, 5).float(2.5).join();
    expect(both(unpacked.finish()).fast.data[0]?.input).toEqual([1.5, 2.5]);

    const split = new BinaryWriter();
    split.tag(1, 2).fork();
    split.tag(1, 2).fork().float(1).join();
    split.tag(1, 2).fork().float(2).join();
    split.join();
    const { fast, reference } = both(split.finish());
    expect(fast).toEqual(reference);
    expect(fast.data[0]?.input).toEqual([1, 2]);
  });

  it("throws what fromBinary throws for malformed bytes", () => {
    const truncated = encode({ data: [{ input: [1, 2, 3] }] }).subarray(0, 7);
    expect(() => fromBinary(SubmitBatchRequestSchema, truncated)).toThrow();
    expect(() => decodeSubmitBatchRequest(truncated)).toThrow();

    const w = new BinaryWriter();
    w.tag(1, 2)
      .fork()
      .tag(1, 2)
      .bytes(new Uint8Array([1, 2, 3]))
      .join(); // 3 bytes: not floats
    const odd = w.finish();
    const message = (() => {
      try {
        fromBinary(SubmitBatchRequestSchema, odd);
        return "no error";
      } catch (error) {
        return (error as Error).message;
      }
    })();
    expect(() => decodeSubmitBatchRequest(odd)).toThrow(message);
  });
});
