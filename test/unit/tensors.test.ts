/**
 * Named tensors' conversions (each datatype's checks, float16, raw bytes) and the padding of
 * variable-length inputs (a batch padded to its longest item along the dynamic axes, outputs cut
 * back per item), against values worked out by hand.
 */
import { describe, expect, it } from "vitest";
import { floatToHalf, halfToFloat } from "../../src/engine/float16.js";
import type { ModelInfo } from "../../src/engine/index.js";
import {
  batchTensor,
  cutBack,
  itemLengths,
  paddingPlanOf,
  shapeKey,
} from "../../src/engine/padding.js";
import { fromRawBytes, toRawBytes } from "../../src/engine/tensor-bytes.js";
import {
  type ItemTensor,
  numbersOf,
  PRIMARY,
  type TypedTensor,
  toPlainValues,
  toTensorData,
} from "../../src/engine/tensors.js";

describe("tensor conversions", () => {
  it("converts values to each datatype, refusing the first element that does not fit, by index", () => {
    expect(Array.from(toTensorData("v", "INT64", [1, -2, 2 ** 40]) as BigInt64Array)).toEqual([
      1n,
      -2n,
      2n ** 40n,
    ]);
    expect(Array.from(toTensorData("v", "UINT8", [0, 255]) as Uint8Array)).toEqual([0, 255]);
    expect(() => toTensorData("v", "UINT8", [0, 256])).toThrow(
      /^v\[1\]: expected an integer in 0\.\.255 \(UINT8\), got 256$/,
    );
    expect(() => toTensorData("v", "INT32", [1, 1.5])).toThrow(/^v\[1\]: expected an integer/);
    expect(() => toTensorData("v", "INT64", [1, 2n ** 63n])).toThrow(
      /^v\[1\]: expected an integer/,
    );
    expect(() => toTensorData("v", "FP32", [1, Number.NaN])).toThrow(
      /^v\[1\]: expected a finite number/,
    );
    expect(() => toTensorData("v", "FP16", [65520])).toThrow(/^v\[0\]: 65520 is outside the FP16/);
    expect(Array.from(toTensorData("v", "BOOL", [true, 0, 1, false]) as Uint8Array)).toEqual([
      1, 0, 1, 0,
    ]);
    expect(() => toTensorData("v", "BOOL", [2])).toThrow(/^v\[0\]: expected true, false, 0 or 1/);
    expect(toTensorData("v", "BYTES", ["a", "é"])).toEqual(["a", "é"]);
    expect(() => toTensorData("v", "BYTES", ["a", 1])).toThrow(/^v\[1\]: expected a string/);
  });

  it("rounds to float16 to nearest even and reads the bits back, subnormals and limits included", () => {
    for (const [value, bits] of [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [0.1, 0x2e66],
      [2 ** -24, 0x0001],
      [0, 0],
      [1 + 2 ** -11, 0x3c00],
      [1 + 3 * 2 ** -11, 0x3c02],
    ] as const) {
      expect(floatToHalf(value), String(value)).toBe(bits);
    }
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(halfToFloat(floatToHalf(0.333251953125))).toBe(0.333251953125);
  });

  it("reads and writes raw little-endian bytes, strings with 4-byte lengths", () => {
    const ids = BigInt64Array.of(7n, -1n);
    expect(Array.from(fromRawBytes("r", "INT64", toRawBytes(ids), 2) as BigInt64Array)).toEqual([
      7n,
      -1n,
    ]);
    expect(() => fromRawBytes("r", "INT64", new Uint8Array(12), 2)).toThrow(
      /^r: expected 16 bytes \(2 INT64 elements\), got 12$/,
    );
    const strings = toRawBytes(["ab", ""]);
    expect(Array.from(strings)).toEqual([2, 0, 0, 0, 97, 98, 0, 0, 0, 0]);
    expect(fromRawBytes("r", "BYTES", strings, 2)).toEqual(["ab", ""]);
    expect(() => fromRawBytes("r", "BYTES", strings.subarray(0, 5), 1)).toThrow(/^r: expected 1/);
    expect(toPlainValues("FP16", Uint16Array.of(0x3c00, 0xc000))).toEqual([1, -2]);
    expect(toPlainValues("BOOL", Uint8Array.of(1, 0))).toEqual([true, false]);
  });

  it("copies typed elements into a plain array, float32 values and int64 bigints as they are", () => {
    const floats = Float32Array.of(0.1, -2.5, 3e38);
    const copied = numbersOf(floats);
    expect(Array.isArray(copied)).toBe(true);
    expect(copied).toEqual([Math.fround(0.1), -2.5, Math.fround(3e38)]);
    floats[0] = 9;
    expect(copied[0]).toBe(Math.fround(0.1));
    expect(numbersOf(BigInt64Array.of(2n ** 62n, -1n))).toEqual([2n ** 62n, -1n]);
    expect(numbersOf(new Float32Array(0))).toEqual([]);
  });
});

describe("padding", () => {
  const model: ModelInfo = {
    name: "m",
    available: true,
    itemShape: [-1, 2],
    maxBatchSize: 8,
    outputKind: "raw",
    inputName: "ids",
    outputName: "scores",
    inputs: [
      { name: "ids", datatype: "INT64", shape: [-1, -1, 2], dimNames: ["batch", "sequence", ""] },
      { name: "mask", datatype: "INT64", shape: [-1, -1], dimNames: ["batch", "sequence"] },
    ],
    outputs: [
      { name: "scores", datatype: "FP32", shape: [-1, -1], dimNames: ["batch", "sequence"] },
      { name: "pooled", datatype: "FP32", shape: [-1, 2], dimNames: ["batch", ""] },
    ],
    padding: { ids: 9, mask: 0 },
  };
  const item = (length: number, base: number): { inputs: ItemTensor[] } => ({
    inputs: [
      {
        name: PRIMARY,
        datatype: "INT64",
        shape: [length, 2],
        data: BigInt64Array.from({ length: length * 2 }, (_, j) => BigInt(base + j)),
      },
      {
        name: "mask",
        datatype: "INT64",
        shape: [length],
        data: new BigInt64Array(length).fill(1n),
      },
    ],
  });

  it("keys items that differ only in padded axes alike, pads a batch to its longest and cuts outputs back", () => {
    const plan = paddingPlanOf(model);
    expect(plan).toBeDefined();
    if (plan === undefined) return;
    const [short, long] = [item(1, 100), item(3, 200)];
    expect(shapeKey(short.inputs[0] as ItemTensor, plan)).toBe("*x2");
    expect(shapeKey(long.inputs[0] as ItemTensor, plan)).toBe("*x2");
    expect(shapeKey(short.inputs[0] as ItemTensor, undefined)).toBe("1x2");
    const ids = batchTensor([short, long], 0, plan);
    expect(ids.dims).toEqual([2, 3, 2]);
    expect(Array.from(ids.data as BigInt64Array).map(Number)).toEqual([
      100, 101, 9, 9, 9, 9, 200, 201, 202, 203, 204, 205,
    ]);
    const mask = batchTensor([short, long], 1, plan);
    expect(Array.from(mask.data as BigInt64Array).map(Number)).toEqual([1, 0, 0, 1, 1, 1]);
    const lengths = itemLengths(short.inputs, plan) ?? new Map();
    expect([...lengths]).toEqual([["sequence", 1]]);
    const scores: TypedTensor = {
      name: "scores",
      datatype: "FP32",
      shape: [3],
      data: Float32Array.of(1, 2, 3),
    };
    expect(cutBack(scores, plan, lengths)).toMatchObject({ shape: [1], data: Float32Array.of(1) });
    const pooled: TypedTensor = {
      ...scores,
      name: "pooled",
      shape: [2],
      data: Float32Array.of(4, 5),
    };
    expect(cutBack(pooled, plan, lengths)).toBe(pooled);
  });

  it("pads nothing for a model without padding", () => {
    expect(paddingPlanOf({ ...model, padding: undefined })).toBeUndefined();
  });
});
