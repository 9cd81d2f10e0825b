/** The gRPC deserializer's holder: a request taken once, or its decoding error thrown. */
import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  GetBatchStatusRequestSchema,
  SubmitBatchRequestSchema,
} from "../../../gen/batchprocessor/v1/batch_processor_pb.js";
import { InvalidInputError } from "../../../src/engine/index.js";
import { DecodedRequest } from "../../../src/wire/index.js";
import type { PackedSubmitBatchRequest } from "../../../src/wire/submit-reader.js";

describe("DecodedRequest", () => {
  it("hands its request over once and keeps no reference to it", () => {
    const bytes = toBinary(
      SubmitBatchRequestSchema,
      create(SubmitBatchRequestSchema, { data: [{ input: [1, 2] }], priority: "low" }),
    );
    const decoded = DecodedRequest.of(SubmitBatchRequestSchema, bytes);
    const taken = decoded.take() as PackedSubmitBatchRequest;
    expect(taken.message.priority).toBe("low");
    expect(Array.from(taken.inputs[0] ?? [])).toEqual([1, 2]);
    expect(decoded.take()).toBeUndefined();
  });

  it("throws the decoding's error, naming the request, whenever it is taken", () => {
    const decoded = DecodedRequest.of(GetBatchStatusRequestSchema, Uint8Array.of(0x0a, 0x05, 0x61));
    for (let i = 0; i < 2; i++) {
      expect(() => decoded.take()).toThrow(InvalidInputError);
      expect(() => decoded.take()).toThrow(/request/);
    }
  });
});
