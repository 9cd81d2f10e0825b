/**
 * Validation of submit and infer requests. Every rule names the field as the client wrote it
 * (`data[3].input[7]`), and the output is the normalized form the processor queues.
 */
import { createHash } from "node:crypto";
import { echo, InvalidInputError, ModelUnavailableError } from "./errors.js";
import type { ModelCatalog, ModelInfo } from "./inference-pool.js";
import { type ValidItem, validateItemTensors } from "./item-validation.js";
import type { StoredInput } from "./job-store.js";
import { modelVersion } from "./model-versions.js";
import { toRawBytes } from "./tensor-bytes.js";
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
  const { requestId } = item as { requestId?: unknown };
  const id = validateId(`${field}.request_id`, requestId) ?? `req_${index + 1}`;
  return { requestId: id, inputs: validateItemTensors(field, item, model) };
}

/** Digest of everything that defines a request, for idempotent resubmits. */
export function payloadDigest(valid: ValidSubmit, inputs: readonly StoredInput[]): string {
  const hash = createHash("sha256");
  hash.update(JSON.stringify([valid.priority, valid.timeoutMs, valid.model.name, valid.metadata]));
  if (valid.outputs !== undefined)
    hash.update(`\u0000outputs\u0000${valid.outputs.join("\u0000")}`);
  for (const item of inputs) {
    hash.update(`\u0000${item.requestId}\u0000${item.shape.join(",")}\u0000`);
    hash.update(new Uint8Array(item.input.buffer, item.input.byteOffset, item.input.byteLength));
    for (const t of item.tensors ?? []) {
      hash.update(`\u0000${t.name}\u0000${t.datatype}\u0000${t.shape.join(",")}\u0000`);
      hash.update(toRawBytes(t.data));
    }
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
