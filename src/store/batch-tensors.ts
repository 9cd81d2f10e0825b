/**
 * A durable batch's items and outputs of tensors other than one float32 vector, for both stores.
 * A batch whose items are all float vectors keeps its inputs as their numbers back to back;
 * a batch with any other item keeps them as a job chunk's lines (one per item, numbered by its
 * index), and its items' shapes read {@link TENSOR_SHAPE}. Outputs asked for by name are a job
 * chunk's outcome of one line.
 */
import { floatInput, type StoredInput, type TypedTensor } from "../engine/index.js";
import { floats, joinedInputs } from "./codec.js";
import { decodeLines, decodeOutcomes, encodeLines, encodeOutcomes } from "./job-chunks.js";

/** The stored shape of an item of a batch whose inputs are tensors: they hold their own. */
export const TENSOR_SHAPE = "*";

/** The inputs of `items` as one BLOB, and the shape each item is stored with. */
export function encodeBatchInputs(items: readonly StoredInput[]): {
  data: Buffer;
  shapes: string[];
} {
  const ordered = [...items].sort((a, b) => a.index - b.index);
  if (ordered.every((item) => item.tensors === undefined))
    return { data: joinedInputs(ordered), shapes: ordered.map((item) => item.shape.join(",")) };
  const lines = ordered.map((item) => ({
    line: item.index,
    id: item.requestId,
    inputs: item.tensors ?? [floatInput(item.shape, item.input)],
    named: false,
  }));
  return { data: encodeLines(lines), shapes: ordered.map(() => TENSOR_SHAPE) };
}

/** Each item's input from {@link encodeBatchInputs}' BLOB, by the shapes stored with them. */
export function decodeBatchInputs(
  data: Buffer,
  items: readonly { readonly index: number; readonly requestId: string; readonly shape: string }[],
): StoredInput[] {
  if (items[0]?.shape === TENSOR_SHAPE) {
    const byIndex = new Map<number, readonly TypedTensor[]>();
    for (const line of decodeLines(data)) if ("inputs" in line) byIndex.set(line.line, line.inputs);
    return items.map(({ index, requestId }) => {
      const tensors = byIndex.get(index) ?? [];
      return { index, requestId, input: new Float32Array(0), shape: [], tensors };
    });
  }
  const numbers = floats(data);
  let offset = 0;
  return items.map(({ index, requestId, shape: text }) => {
    const shape = text.split(",").map(Number);
    const length = shape.reduce((a, b) => a * b, 1);
    const input = numbers.slice(offset, offset + length);
    offset += length;
    return { index, requestId, input, shape };
  });
}

/** An item's outputs by name as one BLOB. */
export function encodeOutputs(outputs: readonly TypedTensor[]): Buffer {
  return encodeOutcomes([{ line: 0, id: null, output: null, outputs, confidence: 0, error: null }]);
}

/** The outputs of {@link encodeOutputs}' BLOB. */
export function decodeOutputs(blob: Buffer): readonly TypedTensor[] {
  return decodeOutcomes(blob)[0]?.outputs ?? [];
}
