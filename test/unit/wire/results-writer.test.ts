import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  type BatchResults,
  BatchResultsSchema,
} from "../../../gen/batchprocessor/v1/batch_processor_pb.js";
import { encodeBatchResults } from "../../../src/wire/results-writer.js";

/** A deterministic pseudo-random source, so a failure names a reproducible case. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

function sample(seed: number): BatchResults {
  const next = random(seed);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)] as T;
  const numbers = [0, -0, 1, -1.5, 0.1, Number.NaN, 1e300, -1e-300, 123_456.789];
  const strings = ["", "a", "batch_1234", "é✓ unicode ☃", "x".repeat(200)];
  return create(BatchResultsSchema, {
    batchId: pick(strings),
    status: pick(["", "completed", "failed"]),
    results: Array.from({ length: Math.floor(next() * 5) }, () => ({
      requestId: pick(strings),
      // Outputs come from float32 tensors: each value is a float32 (protobuf-es refuses others).
      // 5,000 is more than the writer's float buffer starts with: it grows.
      output: Array.from({ length: pick([0, 1, 10, 40, 300, 5000]) }, () =>
        Math.fround(pick(numbers.slice(0, 6)) * next()),
      ),
      confidence: pick(numbers),
      processingTimeMs: pick(numbers),
      error: pick([undefined, "", "EXPIRED: deadline passed"]),
      label: pick(strings),
    })),
    metadata:
      next() < 0.8
        ? {
            totalProcessingTimeMs: pick(numbers),
            averagePerRequestMs: pick(numbers),
            batchSize: pick([0, 1, 127, 128, 300_000, 4_294_967_295]),
          }
        : undefined,
    error: pick([undefined, "", "failed: model unavailable"]),
  });
}

describe("encodeBatchResults", () => {
  it("writes exactly protobuf-es's bytes", () => {
    for (let seed = 1; seed <= 500; seed++) {
      const message = sample(seed);
      expect(Buffer.from(encodeBatchResults(message)), `seed ${seed}`).toEqual(
        Buffer.from(toBinary(BatchResultsSchema, message)),
      );
    }
  });

  it("keeps unknown fields, through protobuf-es", () => {
    const withUnknown = fromBinary(
      BatchResultsSchema,
      Uint8Array.from([...toBinary(BatchResultsSchema, sample(3)), 0xf8, 0x06, 0x2a]),
    );
    expect(withUnknown.$unknown).toBeDefined();
    expect(Buffer.from(encodeBatchResults(withUnknown))).toEqual(
      Buffer.from(toBinary(BatchResultsSchema, withUnknown)),
    );
  });
});
