/**
 * Validation of submit and infer requests. Every rule names the field as the client wrote it
 * (`data[3].input[7]`), and the output is the normalized form the processor queues.
 */
import { createHash } from "node:crypto";
import { echo, InvalidInputError, ModelNotFoundError, ModelUnavailableError } from "./errors.js";
import type { ModelCatalog, ModelInfo } from "./inference-pool.js";
import type { StoredInput } from "./job-store.js";
import {
  BATCH_STATUSES,
  type BatchStatus,
  PRIORITIES,
  type Priority,
  type SubmitRequest,
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
  /** The input numbers as given (checked finite); converted to float32 when batched or stored. */
  readonly data: ArrayLike<number>;
  /** Per-item dims (no -1). */
  readonly shape: readonly number[];
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
  return { items, priority, timeoutMs, model, metadata, batchId };
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
  return modelNamed("metadata.model_id", requested ?? defaultModel, models);
}

/** The model called `name`, if it exists and is available; `field` names where the name came from. */
export function modelNamed(field: string, name: string, models: ModelCatalog): ModelInfo {
  const model = models.get(name);
  if (model === undefined)
    throw new ModelNotFoundError(
      name,
      models.list().map((m) => m.name),
      field,
    );
  if (!model.available) throw new ModelUnavailableError(name, model.reason ?? "failed to load");
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
  const { input, requestId, shape } = item as {
    input?: unknown;
    requestId?: unknown;
    shape?: unknown;
  };
  const tensor = validateTensor(`${field}.`, input, shape, model);
  return {
    requestId: validateId(`${field}.request_id`, requestId) ?? `req_${index + 1}`,
    data: tensor.data,
    shape: tensor.shape,
  };
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
  const dims = validateShape(`${prefix}shape`, shape, length);
  checkFitsModel(prefix, dims, length, model);
  return { data: input as ArrayLike<number>, shape: dims };
}

function validateShape(field: string, shape: unknown, length: number): number[] {
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
      `[${shape.join(", ")}] holds ${product} numbers but input has ${length}`,
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
