/**
 * Validation of submit and infer requests. Every rule names the field as the client wrote it
 * (`data[3].input[7]`), and the output is the normalized form the processor queues.
 */
import { createHash } from "node:crypto";
import { echo, InvalidInputError, ModelUnavailableError } from "./errors.js";
import type { ModelCatalog, ModelInfo } from "./inference-pool.js";
import type { StoredInput } from "./job-store.js";
import { modelVersion } from "./model-versions.js";
import {
  type Datatype,
  firstNonFinite,
  fromRawBytes,
  type ItemTensor,
  isDatatype,
  PRIMARY,
  type TensorData,
  toTensorData,
} from "./tensors.js";
import {
  BATCH_STATUSES,
  type BatchStatus,
  PRIORITIES,
  type Priority,
  type SubmitRequest,
  type TensorInput,
} from "./types.js";

/** Most items in one submit. */
export const MAX_ITEMS_PER_SUBMIT = 1000;
/** `timeout_ms` bounds and default. */
export const TIMEOUT_MS = Object.freeze({ min: 100, max: 300_000, default: 5000 });
/** Longest client `batch_id` / `request_id`. */
export const MAX_ID_LENGTH = 128;
const ID_PATTERN = /^[A-Za-z0-9._:-]+$/;
/** Largest magnitude a float32 holds; inputs are float32 tensors. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Bounds of a request's `metadata`: it is stored with the batch for the result TTL and decoding
 * it costs the event loop per entry, so its size is capped as a whole and in its parts.
 */
export const METADATA_LIMITS = Object.freeze({
  /** Size of the whole object as JSON, bytes. */
  maxBytes: 16_384,
  /** Keys of the top-level object. */
  maxEntries: 64,
  /** Length of any key, at any depth, characters. */
  maxKeyChars: 128,
  /** Length of any string value, at any depth, characters. */
  maxStringChars: 4096,
  /** Nesting of objects and arrays below the top level. */
  maxDepth: 8,
});

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

/** A validated request. */
export interface ValidSubmit {
  readonly items: readonly ValidItem[];
  readonly priority: Priority;
  readonly timeoutMs: number;
  /**
   * An absolute deadline (epoch ms) instead of `timeoutMs` from its start: a job's items all end
   * their wait at the window's end, whenever their chunk starts.
   */
  readonly deadline?: number | undefined;
  readonly model: ModelInfo;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly batchId: string | undefined;
  /**
   * The outputs to answer with by name (each item's `outputs`); undefined for an answer in the
   * shorthand (the primary output's numbers as `output`).
   */
  readonly outputs?: readonly string[] | undefined;
}

/** Validates `request` against the limits and the chosen model's input shape. */
export function validateSubmit(
  request: SubmitRequest,
  models: ModelCatalog,
  defaultModel: string,
): ValidSubmit {
  if (typeof request !== "object" || request === null)
    throw new InvalidInputError("body", "expected a JSON object");
  const metadata = validateMetadata(request.metadata);
  const model = resolveModel(metadata, models, defaultModel);
  const priority = validatePriority(request.priority);
  const timeoutMs = validateTimeout(request.timeoutMs);
  const batchId = validateId("batch_id", request.batchId);
  const data: unknown = request.data;
  if (!Array.isArray(data)) throw new InvalidInputError("data", "expected an array of items");
  if (data.length === 0) throw new InvalidInputError("data", "must contain at least 1 item");
  if (data.length > MAX_ITEMS_PER_SUBMIT) {
    throw new InvalidInputError(
      "data",
      `must contain at most ${MAX_ITEMS_PER_SUBMIT} items, got ${data.length}`,
    );
  }
  const items = data.map((item: unknown, i) => validateItem(item, i, model));
  const named = data.some((item: unknown) => (item as { inputs?: unknown }).inputs !== undefined);
  const outputs = validateOutputNames(request.outputNames, model, named);
  return { items, priority, timeoutMs, model, metadata, batchId, outputs };
}

/**
 * The outputs a request is answered with by name: those it names, or every output when its items
 * came by name; undefined (the shorthand answer) otherwise.
 */
function validateOutputNames(
  names: unknown,
  model: ModelInfo,
  named: boolean,
): readonly string[] | undefined {
  const declared = (model.outputs ?? []).map((o) => o.name);
  if (names === undefined || names === null || (Array.isArray(names) && names.length === 0))
    return named ? declared : undefined;
  if (!Array.isArray(names)) throw new InvalidInputError("output_names", "expected an array");
  for (const [i, name] of names.entries())
    if (typeof name !== "string" || !declared.includes(name))
      throw new InvalidInputError(
        `output_names[${i}]`,
        `model ${JSON.stringify(model.name)} has no output ${echo(name)}; its outputs are ${declared.join(", ")}`,
      );
  return [...new Set(names as string[])];
}

/**
 * Validates free-form JSON (`metadata`) against {@link METADATA_LIMITS}; `field` names it in
 * messages. Transports call it too, before decoding such JSON costs them anything.
 */
export function validateMetadata(
  metadata: unknown,
  field = "metadata",
): Readonly<Record<string, unknown>> {
  if (metadata === undefined || metadata === null) return {};
  if (typeof metadata !== "object" || Array.isArray(metadata))
    throw new InvalidInputError(field, "expected a JSON object");
  const entries = Object.keys(metadata).length;
  if (entries > METADATA_LIMITS.maxEntries) {
    throw new InvalidInputError(
      field,
      `has ${entries} entries; at most ${METADATA_LIMITS.maxEntries} are allowed`,
    );
  }
  checkMetadataValue(field, field, metadata, 0, { bytes: 0 });
  const bytes = Buffer.byteLength(JSON.stringify(metadata));
  if (bytes > METADATA_LIMITS.maxBytes) {
    throw new InvalidInputError(
      field,
      `is ${bytes} bytes as JSON; at most ${METADATA_LIMITS.maxBytes} are allowed`,
    );
  }
  return metadata as Record<string, unknown>;
}

/**
 * Checks key and string lengths and depth, and stops as soon as the running size passes
 * `maxBytes`, so an oversized object costs no more than the limit to reject.
 */
function checkMetadataValue(
  root: string,
  field: string,
  value: unknown,
  depth: number,
  size: { bytes: number },
): void {
  const tooBig = () =>
    new InvalidInputError(
      root,
      `is larger than the ${METADATA_LIMITS.maxBytes} bytes allowed as JSON`,
    );
  if (typeof value === "string") {
    if (value.length > METADATA_LIMITS.maxStringChars) {
      throw new InvalidInputError(
        field,
        `is ${value.length} characters long; at most ${METADATA_LIMITS.maxStringChars} are allowed`,
      );
    }
    size.bytes += value.length + 2;
  } else if (typeof value === "object" && value !== null) {
    if (depth >= METADATA_LIMITS.maxDepth)
      throw new InvalidInputError(field, `nests deeper than ${METADATA_LIMITS.maxDepth} levels`);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        checkMetadataValue(root, `${field}[${i}]`, value[i], depth + 1, size);
        if (size.bytes > METADATA_LIMITS.maxBytes) throw tooBig();
      }
    } else {
      for (const [key, inner] of Object.entries(value)) {
        if (key.length > METADATA_LIMITS.maxKeyChars) {
          throw new InvalidInputError(
            field,
            `key ${echo(key)} is longer than ${METADATA_LIMITS.maxKeyChars} characters`,
          );
        }
        size.bytes += key.length + 3;
        checkMetadataValue(root, `${field}.${key}`, inner, depth + 1, size);
        if (size.bytes > METADATA_LIMITS.maxBytes) throw tooBig();
      }
    }
  } else {
    size.bytes += 8;
  }
}

function resolveModel(
  metadata: Readonly<Record<string, unknown>>,
  models: ModelCatalog,
  defaultModel: string,
): ModelInfo {
  const requested = metadata.model_id;
  if (requested !== undefined && typeof requested !== "string") {
    throw new InvalidInputError("metadata.model_id", "expected a string");
  }
  const version = metadata.model_version;
  if (version !== undefined && typeof version !== "string")
    throw new InvalidInputError("metadata.model_version", 'expected a string, e.g. "2"');
  return modelNamed("metadata.model_id", requested ?? defaultModel, models, {
    field: "metadata.model_version",
    version: version ?? "",
  });
}

/**
 * The model called `name` (in `version.version`, the latest when empty or absent), if it exists
 * and is available; `field` and `version.field` name where the name and version came from.
 */
export function modelNamed(
  field: string,
  name: string,
  models: ModelCatalog,
  version: { readonly field: string; readonly version: string } = { field: "", version: "" },
): ModelInfo {
  const model = modelVersion(models, name, version.version, {
    name: field,
    version: version.field,
  });
  if (!model.available)
    throw new ModelUnavailableError(model.name, model.reason ?? "failed to load");
  return model;
}

/** A priority class; `fallback` when none is given. */
export function validatePriority(priority: unknown, fallback: Priority = "normal"): Priority {
  if (priority === undefined || priority === null || priority === "") return fallback;
  if (typeof priority !== "string" || !(PRIORITIES as readonly string[]).includes(priority)) {
    throw new InvalidInputError(
      "priority",
      `expected one of ${PRIORITIES.join(", ")}, got ${echo(priority)}`,
    );
  }
  return priority as Priority;
}

function validateTimeout(timeoutMs: unknown): number {
  if (timeoutMs === undefined || timeoutMs === null || timeoutMs === 0) return TIMEOUT_MS.default;
  if (
    typeof timeoutMs !== "number" ||
    !Number.isInteger(timeoutMs) ||
    timeoutMs < TIMEOUT_MS.min ||
    timeoutMs > TIMEOUT_MS.max
  ) {
    throw new InvalidInputError(
      "timeout_ms",
      `expected an integer in ${TIMEOUT_MS.min}..${TIMEOUT_MS.max}, got ${echo(timeoutMs)}`,
    );
  }
  return timeoutMs;
}

/** Validates the `batch_id` a lookup (status, results, cancel, watch) names. */
export function validateBatchId(id: unknown): string {
  const valid = validateId("batch_id", id);
  if (valid === undefined) throw new InvalidInputError("batch_id", "is required");
  return valid;
}

/** Validates an optional client id (`batch_id`, `request_id`); empty means absent. */
export function validateId(field: string, id: unknown): string | undefined {
  if (id === undefined || id === null || id === "") return undefined;
  if (typeof id !== "string") throw new InvalidInputError(field, "expected a string");
  if (id.length > MAX_ID_LENGTH) {
    throw new InvalidInputError(
      field,
      `must be at most ${MAX_ID_LENGTH} characters, got ${id.length}`,
    );
  }
  if (!ID_PATTERN.test(id))
    throw new InvalidInputError(field, "may contain only letters, digits and . _ : -");
  return id;
}

function validateItem(item: unknown, index: number, model: ModelInfo): ValidItem {
  const field = `data[${index}]`;
  if (typeof item !== "object" || item === null || Array.isArray(item)) {
    throw new InvalidInputError(field, 'expected an object like {"input": [numbers...]}');
  }
  const { input, inputs, requestId, shape } = item as {
    input?: unknown;
    inputs?: unknown;
    requestId?: unknown;
    shape?: unknown;
  };
  const id = validateId(`${field}.request_id`, requestId) ?? `req_${index + 1}`;
  if (inputs !== undefined && inputs !== null) {
    if ((input !== undefined && input !== null) || (shape !== undefined && shape !== null))
      throw new InvalidInputError(
        `${field}.inputs`,
        "give the item's tensors by name in inputs, or its numbers in input and shape, not both",
      );
    return { requestId: id, inputs: validateNamedInputs(`${field}.inputs`, inputs, model) };
  }
  const specs = inputSpecs(model);
  if (specs.length > 1)
    throw new InvalidInputError(
      `${field}.inputs`,
      `model ${JSON.stringify(model.name)} takes ${specs.length} inputs (${specs.map(describeSpec).join(", ")}); give each by name in inputs`,
    );
  const primary = specs[0];
  if (primary === undefined || primary.datatype === "FP32") {
    const tensor = validateTensor(`${field}.`, input, shape, model);
    return shorthandItem(id, tensor.data, tensor.shape);
  }
  if (input === undefined || input === null)
    throw new InvalidInputError(`${field}.input`, "is required");
  if (!isArrayLike(input))
    throw new InvalidInputError(`${field}.input`, "expected an array of numbers");
  return {
    requestId: id,
    inputs: [
      namedTensor(
        `${field}.`,
        primary,
        { values: input, shape: shape as number[] | undefined },
        "input",
      ),
    ],
  };
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

/**
 * Refuses, naming `field`, a model whose items cannot travel as float32 vectors (several inputs,
 * or a primary input of another type): durable batches and jobs store inputs that way.
 */
export function requireFloatVectors(field: string, model: ModelInfo): void {
  const specs = inputSpecs(model);
  const primary = specs[0];
  if (specs.length > 1 || (primary !== undefined && primary.datatype !== "FP32"))
    throw new InvalidInputError(
      field,
      `model ${JSON.stringify(model.name)} takes ${specs.map(describeSpec).join(", ")}; durable batches and jobs store one float32 input per item, so send its items to Infer or the v2 protocol's infer`,
    );
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

/** Digest of everything that defines a request, for idempotent resubmits. */
export function payloadDigest(valid: ValidSubmit, inputs: readonly StoredInput[]): string {
  const hash = createHash("sha256");
  hash.update(JSON.stringify([valid.priority, valid.timeoutMs, valid.model.name, valid.metadata]));
  for (const item of inputs) {
    hash.update(`\u0000${item.requestId}\u0000${item.shape.join(",")}\u0000`);
    hash.update(new Uint8Array(item.input.buffer, item.input.byteOffset, item.input.byteLength));
  }
  return hash.digest("hex");
}

/** Longest `page_token` a store issues. */
const MAX_PAGE_TOKEN_LENGTH = 128;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]*$/;

/** Filter of `BatchProcessor.list`. */
export interface ListOptions {
  /** A status, or `active` for queued + processing; all when absent. */
  readonly status?: string | undefined;
  /** 1..1000. @defaultValue 10 */
  readonly limit?: number | undefined;
  readonly pageToken?: string | undefined;
}

/** Validates a list filter: `limit` 1..1000 (default 10), `status` a state, `active` or `all`. */
export function validateListFilter<S extends string = BatchStatus>(
  options: ListOptions,
  known: readonly S[] = BATCH_STATUSES as unknown as readonly S[],
  active: readonly S[] = ["queued", "processing"] as unknown as readonly S[],
): {
  limit: number;
  statuses: readonly S[] | undefined;
} {
  const limit = options.limit === undefined || options.limit === 0 ? 10 : options.limit;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new InvalidInputError("limit", `expected an integer in 1..1000, got ${echo(limit)}`);
  }
  const token = options.pageToken;
  if (token !== undefined && (token.length > MAX_PAGE_TOKEN_LENGTH || !TOKEN_PATTERN.test(token)))
    throw new InvalidInputError("page_token", "is not a token this server issued");
  const status = options.status;
  if (status === undefined || status === "" || status === "all")
    return { limit, statuses: undefined };
  if (status === "active") return { limit, statuses: active };
  if (!(known as readonly string[]).includes(status)) {
    throw new InvalidInputError(
      "status",
      `expected active, all or one of ${known.join(", ")}, got ${echo(status)}`,
    );
  }
  return { limit, statuses: [status as S] };
}
