import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/engine/index.js";
import {
  BATCHING_DEFAULTS,
  PROCESSOR_DEFAULTS,
  resolveBatchingOptions,
  resolveProcessorOptions,
} from "../../src/engine/options.js";

describe("resolveBatchingOptions", () => {
  it("returns the defaults for an empty patch", () => {
    expect(resolveBatchingOptions({})).toEqual(BATCHING_DEFAULTS);
  });

  it("merges a patch over the base it is given", () => {
    const base = resolveBatchingOptions({ maxBatchSize: 8 });
    expect(resolveBatchingOptions({ maxWaitTimeMs: 5 }, base)).toMatchObject({
      maxBatchSize: 8,
      maxWaitTimeMs: 5,
    });
  });

  it.each([0, -1, 1.5, 4097, Number.NaN])("rejects maxBatchSize %s", (v) => {
    expect(() => resolveBatchingOptions({ maxBatchSize: v })).toThrow(
      /^maxBatchSize: must be an integer in 1\.\.4096/,
    );
  });

  it.each([-1, 60_001, Number.POSITIVE_INFINITY])("rejects maxWaitTimeMs %s", (v) => {
    expect(() => resolveBatchingOptions({ maxWaitTimeMs: v })).toThrow(
      /^maxWaitTimeMs: must be a number in 0\.\.60000/,
    );
  });

  it("accepts maxWaitTimeMs 0 (dispatch at once)", () => {
    expect(resolveBatchingOptions({ maxWaitTimeMs: 0 }).maxWaitTimeMs).toBe(0);
  });

  it("rejects a non-boolean enableDynamicBatching", () => {
    expect(() =>
      resolveBatchingOptions({ enableDynamicBatching: "yes" as unknown as boolean }),
    ).toThrow(/^enableDynamicBatching: must be a boolean, got string$/);
  });

  it("rejects an unknown priority in priorityWeights", () => {
    expect(() => resolveBatchingOptions({ priorityWeights: { urgent: 1 } as never })).toThrow(
      /^priorityWeights\.urgent: is not a priority/,
    );
  });

  it.each([-0.1, 1001, Number.NaN])("rejects a priority weight of %s", (w) => {
    expect(() => resolveBatchingOptions({ priorityWeights: { high: w } })).toThrow(
      /^priorityWeights\.high: must be a number in 0\.\.1000/,
    );
  });

  it("rejects weights that are all zero", () => {
    expect(() =>
      resolveBatchingOptions({ priorityWeights: { critical: 0, high: 0, normal: 0, low: 0 } }),
    ).toThrow(/at least one weight above 0/);
  });

  it("keeps the weights it is not given", () => {
    expect(resolveBatchingOptions({ priorityWeights: { low: 0 } }).priorityWeights).toEqual({
      critical: 1,
      high: 0.8,
      normal: 0.5,
      low: 0,
    });
  });

  it("takes latency targets per class, keeping those it is not given, 0 for none", () => {
    const resolved = resolveBatchingOptions({ priorityLatencyMs: { normal: 2000, high: 0 } });
    expect(resolved.priorityLatencyMs).toEqual({ critical: 100, high: 0, normal: 2000, low: 0 });
  });

  it.each([-1, 3_600_001, Number.NaN, "5" as unknown as number])(
    "rejects a latency target of %s, naming the class",
    (ms) => {
      expect(() => resolveBatchingOptions({ priorityLatencyMs: { critical: ms } })).toThrow(
        /^priorityLatencyMs\.critical: must be a number in 0\.\.3600000/,
      );
    },
  );

  it("rejects an unknown priority in priorityLatencyMs", () => {
    expect(() => resolveBatchingOptions({ priorityLatencyMs: { urgent: 5 } as never })).toThrow(
      /^priorityLatencyMs\.urgent: is not a priority/,
    );
  });

  it("throws the one invalid-input error, naming the field and its rule apart", () => {
    let thrown: unknown;
    try {
      resolveBatchingOptions({ maxBatchSize: 0 });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidInputError);
    expect(thrown).toMatchObject({
      field: "maxBatchSize",
      rule: "must be an integer in 1..4096, got 0",
    });
  });

  it("returns a frozen object", () => {
    expect(Object.isFrozen(resolveBatchingOptions({}))).toBe(true);
  });
});

describe("resolveProcessorOptions", () => {
  it("returns the defaults", () => {
    expect(resolveProcessorOptions()).toEqual(PROCESSOR_DEFAULTS);
  });

  it("ignores undefined fields", () => {
    expect(resolveProcessorOptions({ maxQueueSize: undefined }).maxQueueSize).toBe(10_000);
  });

  it.each([0, 1.5])("rejects maxQueueSize %s", (v) => {
    expect(() => resolveProcessorOptions({ maxQueueSize: v })).toThrow(
      /^maxQueueSize: must be an integer in 1..10000000/,
    );
  });

  it("rejects a negative maxConcurrentBatches", () => {
    expect(() => resolveProcessorOptions({ maxConcurrentBatches: -1 })).toThrow(
      /maxConcurrentBatches/,
    );
  });

  it("rejects a resultTtlMs under one second", () => {
    expect(() => resolveProcessorOptions({ resultTtlMs: 999 })).toThrow(/resultTtlMs/);
  });

  it("rejects a purgeIntervalMs under 10 ms", () => {
    expect(() => resolveProcessorOptions({ purgeIntervalMs: 5 })).toThrow(/purgeIntervalMs/);
  });

  it("rejects an empty defaultModel", () => {
    expect(() => resolveProcessorOptions({ defaultModel: "" })).toThrow(/defaultModel/);
  });
});
