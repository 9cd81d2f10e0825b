/**
 * Validation of an item's tensors against its model's signature: the `input` shorthand or every
 * input by name, each converted to the model's datatype and checked against its per-item shape
 * (dynamic axes free, axes of one name alike). Every rule names the field as the client wrote it
 * (`data[3].inputs.input_ids.values[7]`).
 */
import { echo, InvalidInputError } from "./errors.js";
import type { ModelInfo } from "./inference-pool.js";
import { fromRawBytes } from "./tensor-bytes.js";
import {
  type Datatype,
  firstNonFinite,
  type ItemTensor,
  isDatatype,
  PRIMARY,
  type TensorData,
  toTensorData,
} from "./tensors.js";
import type { TensorInput } from "./types.js";

/** Largest magnitude a float32 holds; inputs are float32 tensors. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** One item, validated and converted. */
export interface ValidItem {
  readonly requestId: string;
  /**
   * Its tensors in the order of the model's inputs, the primary input named {@link PRIMARY}.
   * FP32 numbers are kept as given (checked finite and in range) until batched or stored.
   */
  readonly inputs: readonly ItemTensor[];
}

/** An item of the `input` shorthand: the model's primary input, FP32. */
export function shorthandItem(
  requestId: string,
  data: ArrayLike<number>,
  shape: readonly number[],
): ValidItem {
  return { requestId, inputs: [{ name: PRIMARY, datatype: "FP32", shape, data }] };
}

/**
 * An item's tensors (`input` and `shape`, or `inputs` by name) checked against `model` and
 * converted to its datatypes, in the order of its inputs; fields are named under `field`
 * (`data[3]`; none when empty).
 */
export function validateItemTensors(
  field: string,
  item: object,
  model: ModelInfo,
): readonly ItemTensor[] {
  const { input, inputs, shape } = item as { input?: unknown; inputs?: unknown; shape?: unknown };
  const at = field === "" ? "" : `${field}.`;
  if (inputs !== undefined && inputs !== null) {
    if ((input !== undefined && input !== null) || (shape !== undefined && shape !== null))
      throw new InvalidInputError(
        `${at}inputs`,
        "give the item's tensors by name in inputs, or its numbers in input and shape, not both",
      );
    return validateNamedInputs(`${at}inputs`, inputs, model);
  }
  const specs = inputSpecs(model);
  if (specs.length > 1)
    throw new InvalidInputError(
      `${at}inputs`,
      `model ${JSON.stringify(model.name)} takes ${specs.length} inputs (${specs.map(describeSpec).join(", ")}); give each by name in inputs`,
    );
  const primary = specs[0];
  if (primary === undefined || primary.datatype === "FP32") {
    const tensor = validateTensor(at, input, shape, model);
    return [{ name: PRIMARY, datatype: "FP32", shape: tensor.shape, data: tensor.data }];
  }
  if (input === undefined || input === null)
    throw new InvalidInputError(`${at}input`, "is required");
  if (!isArrayLike(input))
    throw new InvalidInputError(`${at}input`, "expected an array of numbers");
  return [
    namedTensor(at, primary, { values: input, shape: shape as number[] | undefined }, "input"),
  ];
}

/** A model input as admission checks it: its engine name, datatype and per-item dims. */
export interface InputSpec {
  /** The graph's name. */
  readonly graphName: string;
  /** The engine's: {@link PRIMARY} for the primary input. */
  readonly name: string;
  readonly datatype: Datatype;
  /** Per-item dims, -1 for any size. */
  readonly shape: readonly number[];
  /** The graph's name of each per-item dim (`sequence`); empty for a fixed or unnamed one. */
  readonly dimNames: readonly string[];
}

/**
 * The model's inputs, the primary one first with its per-item shape as the model's config gives
 * it; a model whose graph could not be read has its primary input alone, FP32.
 */
export function inputSpecs(model: ModelInfo): readonly InputSpec[] {
  let specs = SPECS.get(model);
  if (specs === undefined) {
    specs = specsOf(model);
    SPECS.set(model, specs);
  }
  return specs;
}

/** Input specs by catalog entry: an entry never changes (a reload makes a new one). */
const SPECS = new WeakMap<ModelInfo, readonly InputSpec[]>();

function specsOf(model: ModelInfo): InputSpec[] {
  const declared = model.inputs ?? [];
  if (declared.length === 0)
    return [
      {
        graphName: model.inputName ?? "input",
        name: PRIMARY,
        datatype: "FP32",
        shape: model.itemShape,
        dimNames: [],
      },
    ];
  const primaryName = model.inputName ?? declared[0]?.name;
  const specs = declared.map((spec): InputSpec => {
    const primary = spec.name === primaryName;
    const shape = primary ? model.itemShape : spec.shape.slice(1);
    const names = spec.dimNames?.slice(1) ?? [];
    return {
      graphName: spec.name,
      name: primary ? PRIMARY : spec.name,
      datatype: isDatatype(spec.datatype) ? spec.datatype : "FP32",
      shape,
      dimNames: names.length === shape.length ? names : shape.map(() => ""),
    };
  });
  return specs.sort((a, b) => Number(b.name === PRIMARY) - Number(a.name === PRIMARY));
}

function describeSpec(spec: InputSpec): string {
  return `${spec.graphName} ${spec.datatype} [${spec.shape.map((d) => (d === -1 ? "*" : d)).join(", ")}]`;
}

/** An item's `inputs`: every model input, by its graph name, and nothing else. */
function validateNamedInputs(field: string, inputs: unknown, model: ModelInfo): ItemTensor[] {
  if (typeof inputs !== "object" || Array.isArray(inputs) || inputs === null)
    throw new InvalidInputError(field, "expected an object of tensors by input name");
  const specs = inputSpecs(model);
  const given = inputs as Record<string, unknown>;
  for (const name of Object.keys(given))
    if (!specs.some((s) => s.graphName === name))
      throw new InvalidInputError(
        `${field}.${name.slice(0, 64)}`,
        `model ${JSON.stringify(model.name)} has no input ${echo(name)}; its inputs are ${specs.map(describeSpec).join(", ")}`,
      );
  const tensors = specs.map((spec) => {
    const tensor = given[spec.graphName];
    if (tensor === undefined || tensor === null)
      throw new InvalidInputError(
        field,
        `missing ${JSON.stringify(spec.graphName)} (${describeSpec(spec)}); model ${JSON.stringify(model.name)} takes ${specs.map((s) => s.graphName).join(", ")}`,
      );
    if (typeof tensor !== "object" || Array.isArray(tensor))
      throw new InvalidInputError(
        `${field}.${spec.graphName}`,
        'expected an object like {"values": [...], "shape": [...]}',
      );
    return namedTensor(`${field}.${spec.graphName}.`, spec, tensor as TensorInput, "values");
  });
  checkSharedAxes(field, specs, tensors);
  return tensors;
}

/**
 * Refuses an item whose inputs give different lengths to an axis the graph names alike in them
 * (`sequence` of `input_ids` and of `attention_mask`): the runtime would refuse the whole batch.
 */
function checkSharedAxes(
  field: string,
  specs: readonly InputSpec[],
  tensors: readonly ItemTensor[],
): void {
  const seen = new Map<string, { input: string; length: number }>();
  specs.forEach((spec, k) => {
    const shape = (tensors[k] as ItemTensor).shape;
    spec.dimNames.forEach((name, axis) => {
      if (name === "" || shape.length !== spec.dimNames.length) return;
      const length = shape[axis] as number;
      const first = seen.get(name);
      if (first === undefined) seen.set(name, { input: spec.graphName, length });
      else if (first.length !== length)
        throw new InvalidInputError(
          `${field}.${spec.graphName}.shape`,
          `axis ${axis} ("${name}") is ${length} long, but ${JSON.stringify(first.input)}'s "${name}" is ${first.length}: the model takes them alike`,
        );
    });
  });
}

/**
 * One named tensor converted to its input's datatype and checked against its per-item shape;
 * `valuesField` names where its numbers came from.
 */
function namedTensor(
  prefix: string,
  spec: InputSpec,
  tensor: TensorInput,
  valuesField: string,
): ItemTensor {
  if (tensor.datatype !== undefined && tensor.datatype !== "" && tensor.datatype !== spec.datatype)
    throw new InvalidInputError(
      `${prefix}datatype`,
      `expected ${spec.datatype} (the model's input ${JSON.stringify(spec.graphName)}), got ${echo(tensor.datatype)}`,
    );
  const sources = [
    [valuesField, tensor.values],
    ["strings", tensor.strings],
    ["raw", tensor.raw],
  ].filter(([, v]) => v !== undefined && v !== null && (v as ArrayLike<unknown>).length > 0);
  if (sources.length !== 1)
    throw new InvalidInputError(
      `${prefix}${valuesField}`,
      sources.length === 0
        ? spec.datatype === "BYTES"
          ? "is required (or strings, or raw)"
          : "is required (or raw)"
        : `give the elements once, in one of ${sources.map(([f]) => f).join(", ")}`,
    );
  const [source, elements] = sources[0] as [string, ArrayLike<unknown>];
  const field = `${prefix}${source}`;
  let data: TensorData;
  let count: number;
  if (source === "raw") {
    const shape = tensor.shape;
    if ((shape === undefined || shape.length === 0) && spec.shape.length > 0)
      throw new InvalidInputError(`${prefix}shape`, "is required with raw");
    count = validShape(`${prefix}shape`, shape ?? []);
    data = fromRawBytes(field, spec.datatype, elements as Uint8Array, count);
    const j = firstNonFinite(spec.datatype, data);
    if (j >= 0)
      throw new InvalidInputError(
        `${field}[${j}]`,
        "expected a finite number, got NaN or Infinity",
      );
  } else {
    if (!isArrayLike(elements)) throw new InvalidInputError(field, "expected an array");
    count = elements.length;
    data = toTensorData(field, spec.datatype, elements);
  }
  // An input without dims past the batch axis takes one element per item, shape [].
  const dims =
    spec.shape.length === 0 && count === 1 && (tensor.shape?.length ?? 0) === 0
      ? []
      : validateShape(`${prefix}shape`, tensor.shape, count, source);
  checkDims(prefix, spec, dims, count, source);
  return { name: spec.name, datatype: spec.datatype, shape: dims, data };
}

/** The product of a shape's dims, each checked a positive integer. */
function validShape(field: string, shape: readonly unknown[]): number {
  let product = 1;
  for (const [k, d] of shape.entries()) {
    if (typeof d !== "number" || !Number.isInteger(d) || d < 1)
      throw new InvalidInputError(`${field}[${k}]`, `expected a positive integer, got ${echo(d)}`);
    product *= d;
  }
  return product;
}

function checkDims(
  prefix: string,
  spec: InputSpec,
  dims: readonly number[],
  count: number,
  source: string,
): void {
  const expected = spec.shape;
  if (expected.length === 1 && dims.length === 1) {
    const want = expected[0] as number;
    if (want !== -1 && want !== count)
      throw new InvalidInputError(
        `${prefix}${source}`,
        `expected ${want} elements for ${JSON.stringify(spec.graphName)} (${describeSpec(spec)}), got ${count}`,
      );
    return;
  }
  const fits =
    dims.length === expected.length && expected.every((d, k) => d === -1 || d === dims[k]);
  if (!fits)
    throw new InvalidInputError(
      `${prefix}shape`,
      `${JSON.stringify(spec.graphName)} takes items of shape [${expected.map((d) => (d === -1 ? "*" : d)).join(", ")}], got [${dims.join(", ")}]`,
    );
}

/**
 * Validates one item's numbers and shape against `model`; fields are named `${prefix}input` and
 * `${prefix}shape`.
 */
export function validateTensor(
  prefix: string,
  input: unknown,
  shape: unknown,
  model: ModelInfo,
): { data: ArrayLike<number>; shape: number[] } {
  const field = `${prefix}input`;
  if (input === undefined || input === null) throw new InvalidInputError(field, "is required");
  if (!isArrayLike(input)) throw new InvalidInputError(field, "expected an array of numbers");
  const length = input.length;
  if (length === 0) throw new InvalidInputError(field, "must contain at least 1 number");
  // A Float32Array holds float32 values already; plain numbers must also fit one.
  const float32 = input instanceof Float32Array;
  for (let j = 0; j < length; j++) {
    const v = input[j];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new InvalidInputError(`${field}[${j}]`, `expected a finite number, got ${echo(v)}`);
    }
    if (!float32 && (v > FLOAT32_MAX || v < -FLOAT32_MAX))
      throw new InvalidInputError(`${field}[${j}]`, `${v} is outside the float32 range`);
  }
  const dims = validateShape(`${prefix}shape`, shape, length, "input");
  checkFitsModel(prefix, dims, length, model);
  return { data: input as ArrayLike<number>, shape: dims };
}

function validateShape(
  field: string,
  shape: unknown,
  length: number,
  valuesField: string,
): number[] {
  if (shape === undefined || shape === null || (Array.isArray(shape) && shape.length === 0))
    return [length];
  if (!Array.isArray(shape))
    throw new InvalidInputError(field, "expected an array of positive integers");
  let product = 1;
  for (const [k, d] of shape.entries()) {
    if (typeof d !== "number" || !Number.isInteger(d) || d < 1) {
      throw new InvalidInputError(`${field}[${k}]`, `expected a positive integer, got ${echo(d)}`);
    }
    product *= d;
  }
  if (product !== length) {
    throw new InvalidInputError(
      field,
      `[${shape.join(", ")}] holds ${product} ${valuesField === "input" ? "numbers" : "elements"} but ${valuesField} has ${length}`,
    );
  }
  return shape as number[];
}

function checkFitsModel(
  prefix: string,
  dims: readonly number[],
  length: number,
  model: ModelInfo,
): void {
  const expected = model.itemShape;
  if (expected.length === 1 && dims.length === 1) {
    const want = expected[0] as number;
    if (want !== -1 && want !== length) {
      throw new InvalidInputError(
        `${prefix}input`,
        `expected ${want} numbers for model ${JSON.stringify(model.name)}, got ${length}`,
      );
    }
    return;
  }
  const fits =
    dims.length === expected.length && expected.every((d, k) => d === -1 || d === dims[k]);
  if (!fits) {
    throw new InvalidInputError(
      `${prefix}shape`,
      `model ${JSON.stringify(model.name)} takes items of shape [${expected.map((d) => (d === -1 ? "*" : d)).join(", ")}], got [${dims.join(", ")}]`,
    );
  }
}

function isArrayLike(value: unknown): value is ArrayLike<unknown> {
  return Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView));
}
