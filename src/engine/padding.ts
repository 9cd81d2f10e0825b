/**
 * Padding of variable-length inputs: items of one model whose padded inputs differ only in their
 * dynamic axes share a queue and a model batch; at dispatch each such input is padded to the
 * batch's longest (with the model's pad value, which for an attention mask is its "absent" value),
 * and each output with an axis the graph names like a padded one (`sequence`) is cut back to the
 * item's own length. Pure functions over typed arrays.
 */

import { floatToHalf } from "./float16.js";
import type { ModelInfo } from "./inference-pool.js";
import { inputSpecs } from "./item-validation.js";
import {
  allocate,
  type BatchTensor,
  concatRows,
  type Datatype,
  elementCount,
  type ItemTensor,
  isStrings,
  type TensorData,
  type TypedTensor,
} from "./tensors.js";

/** How one input is padded. */
interface PaddedInput {
  readonly value: number;
  /** Per-item axes it pads: its dynamic ones. */
  readonly axes: readonly number[];
  /** The graph's name of each padded axis ("" when unnamed). */
  readonly names: readonly string[];
}

/** How a model's items are padded and its outputs cut back. */
export interface PaddingPlan {
  /** By the engine's input name. */
  readonly inputs: ReadonlyMap<string, PaddedInput>;
  /** By output name: each per-item axis to cut back, and the axis name that gives its length. */
  readonly cuts: ReadonlyMap<string, readonly { readonly axis: number; readonly name: string }[]>;
  /** The model's primary output, which the shorthand `output` holds. */
  readonly primaryOutput: string | undefined;
}

/**
 * The plan of `model`, made once per catalog entry (an entry never changes: a reload makes a new
 * one); undefined when it pads nothing.
 */
export function paddingPlanOf(model: ModelInfo): PaddingPlan | undefined {
  if (!PLANS.has(model)) PLANS.set(model, planOf(model));
  return PLANS.get(model);
}

const PLANS = new WeakMap<ModelInfo, PaddingPlan | undefined>();

function planOf(model: ModelInfo): PaddingPlan | undefined {
  const padding = model.padding;
  if (padding === undefined) return undefined;
  const inputs = new Map<string, PaddedInput>();
  const padded = new Set<string>();
  for (const spec of inputSpecs(model)) {
    const value = padding[spec.graphName];
    if (value === undefined) continue;
    const axes: number[] = [];
    const names: string[] = [];
    spec.shape.forEach((d, axis) => {
      if (d !== -1) return;
      axes.push(axis);
      const name = spec.dimNames[axis] ?? "";
      names.push(name);
      if (name !== "") padded.add(name);
    });
    if (axes.length > 0) inputs.set(spec.name, { value, axes, names });
  }
  if (inputs.size === 0) return undefined;
  const cuts = new Map<string, { axis: number; name: string }[]>();
  for (const output of model.outputs ?? []) {
    const axes = (output.dimNames ?? [])
      .slice(1)
      .map((name, axis) => ({ axis, name }))
      .filter(({ name }) => padded.has(name));
    if (axes.length > 0) cuts.set(output.name, axes);
  }
  return { inputs, cuts, primaryOutput: model.outputName };
}

/** The queue key part of an item's tensor: its shape, padded axes as `*`. */
export function shapeKey(tensor: ItemTensor, plan: PaddingPlan | undefined): string {
  const padded = plan?.inputs.get(tensor.name);
  if (padded === undefined) return tensor.shape.join("x");
  return tensor.shape.map((d, axis) => (padded.axes.includes(axis) ? "*" : d)).join("x");
}

/**
 * The model batch tensor of input `k` of `items`: their rows back to back, each padded to the
 * longest of the batch along the input's padded axes when the plan pads it.
 */
export function batchTensor(
  items: readonly { readonly inputs: readonly ItemTensor[] }[],
  k: number,
  plan: PaddingPlan | undefined,
): BatchTensor {
  const first = (items[0] as { inputs: readonly ItemTensor[] }).inputs[k] as ItemTensor;
  const padded = plan?.inputs.get(first.name);
  const rows = items.map((item) => item.inputs[k] as ItemTensor);
  if (padded === undefined)
    return {
      name: first.name,
      datatype: first.datatype,
      dims: [rows.length, ...first.shape],
      data: concatRows(
        first.datatype,
        rows.map((r) => r.data),
        first.data.length,
      ),
    };
  let shape = first.shape;
  shape = first.shape.map((d, axis) =>
    padded.axes.includes(axis)
      ? rows.reduce((longest, r) => Math.max(longest, r.shape[axis] as number), 0)
      : d,
  );
  const width = elementCount(shape);
  const data = allocate(first.datatype, rows.length * width);
  if (padded.value !== 0) fill(data, first.datatype, padded.value);
  rows.forEach((row, i) => {
    copyBox(row.data, row.shape, data, shape, i * width, row.shape);
  });
  return { name: first.name, datatype: first.datatype, dims: [rows.length, ...shape], data };
}

/**
 * The lengths an item gives each named padded axis (`sequence` -> 7), for cutting its outputs
 * back; undefined when the plan pads nothing the item has.
 */
export function itemLengths(
  inputs: readonly ItemTensor[],
  plan: PaddingPlan | undefined,
): ReadonlyMap<string, number> | undefined {
  if (plan === undefined) return undefined;
  const lengths = new Map<string, number>();
  for (const tensor of inputs) {
    const padded = plan.inputs.get(tensor.name);
    padded?.axes.forEach((axis, j) => {
      const name = padded.names[j] as string;
      if (name !== "") lengths.set(name, tensor.shape[axis] as number);
    });
  }
  return lengths;
}

/** An item's output cut back to its own lengths along the axes the plan cuts. */
export function cutBack(
  tensor: TypedTensor,
  plan: PaddingPlan,
  lengths: ReadonlyMap<string, number>,
): TypedTensor {
  const cuts = plan.cuts.get(tensor.name);
  if (cuts === undefined) return tensor;
  const shape = [...tensor.shape];
  for (const { axis, name } of cuts) {
    const length = lengths.get(name);
    if (length !== undefined && length < (shape[axis] as number)) shape[axis] = length;
  }
  if (shape.every((d, axis) => d === tensor.shape[axis])) return tensor;
  const data = allocate(tensor.datatype, elementCount(shape));
  copyBox(tensor.data, tensor.shape, data, shape, 0, shape);
  return { ...tensor, shape, data };
}

/** The primary output's row of an item cut back as {@link cutBack} cuts it. */
export function cutPrimary(
  row: Float32Array,
  dims: readonly number[] | undefined,
  plan: PaddingPlan,
  lengths: ReadonlyMap<string, number>,
): Float32Array {
  if (plan.primaryOutput === undefined || dims === undefined) return row;
  const cut = cutBack(
    { name: plan.primaryOutput, datatype: "FP32", shape: dims.slice(1), data: row },
    plan,
    lengths,
  );
  return cut.data as Float32Array;
}

function fill(data: TensorData, datatype: Datatype, value: number): void {
  if (isStrings(data)) return;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array)
    data.fill(BigInt(Math.trunc(value)));
  else (data as Float32Array).fill(datatype === "FP16" ? floatToHalf(value) : value);
}

/**
 * Copies the box `box` (from the origin) of `src` (row-major, shape `srcShape`) into `dst`
 * (row-major, shape `dstShape`, starting at `dstOffset`), one run of the last axis at a time.
 */
function copyBox(
  src: TensorData | ArrayLike<number>,
  srcShape: readonly number[],
  dst: TensorData,
  dstShape: readonly number[],
  dstOffset: number,
  box: readonly number[],
): void {
  const rank = box.length;
  if (rank === 0) {
    (dst as unknown as unknown[])[dstOffset] = (src as ArrayLike<unknown>)[0];
    return;
  }
  const srcStrides = strides(srcShape);
  const dstStrides = strides(dstShape);
  const run = box[rank - 1] as number;
  const outer = elementCount(box.slice(0, -1));
  const index = new Array<number>(rank - 1).fill(0);
  const typed = !isStrings(dst) && ArrayBuffer.isView(src);
  for (let n = 0; n < outer; n++) {
    let s = 0;
    let d = dstOffset;
    for (let a = 0; a < rank - 1; a++) {
      s += (index[a] as number) * (srcStrides[a] as number);
      d += (index[a] as number) * (dstStrides[a] as number);
    }
    if (typed) (dst as Float32Array).set((src as Float32Array).subarray(s, s + run), d);
    else
      for (let j = 0; j < run; j++)
        (dst as unknown as unknown[])[d + j] = (src as ArrayLike<unknown>)[s + j];
    for (let a = rank - 2; a >= 0; a--) {
      index[a] = (index[a] as number) + 1;
      if ((index[a] as number) < (box[a] as number)) break;
      index[a] = 0;
    }
  }
}

function strides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length).fill(1);
  for (let a = shape.length - 2; a >= 0; a--)
    out[a] = (out[a + 1] as number) * (shape[a + 1] as number);
  return out;
}
