/**
 * What a job may be: its spec's rules and the rules of each of its lines. A line that breaks one
 * is not an error of the upload but an outcome of its own, INVALID_ARGUMENT with a message that
 * names the line and the field (`line 3512: input[2]: expected a finite number, got "x"`).
 */
import { createHash, type Hash } from "node:crypto";
import { echo, failure, InvalidInputError } from "../errors.js";
import type { ModelCatalog, ModelInfo } from "../inference-pool.js";
import { validateItemTensors } from "../item-validation.js";
import { toRawBytes } from "../tensor-bytes.js";
import {
  type ItemTensor,
  PRIMARY,
  type TensorData,
  type TypedTensor,
  toFloat32,
} from "../tensors.js";
import type { Priority } from "../types.js";
import { modelNamed, validateId, validatePriority } from "../validation.js";
import {
  floatInput,
  type InvalidLine,
  type JobCallback,
  type JobLine,
  type JobRequest,
  type RawLine,
} from "./job-types.js";

/** The completion window: default and bounds, ms. */
export const COMPLETION_WINDOW_MS = Object.freeze({
  min: 60_000,
  max: 7 * 24 * 3_600_000,
  default: 24 * 3_600_000,
});

/** A job's own result TTL: bounds, ms. */
export const RESULT_TTL_MS = Object.freeze({ min: 60_000, max: 365 * 24 * 3_600_000 });

/** Lines per stored chunk: the unit of feeding, of recovery and of a results read. */
export const CHUNK_LINES = 1024;

/** Longest callback URL, characters. */
const MAX_URL_LENGTH = 2048;

/** A validated spec. */
export interface ValidJobSpec {
  readonly model: ModelInfo;
  readonly priority: Priority;
  readonly windowMs: number;
  readonly jobId: string | undefined;
  readonly rejectInvalid: boolean;
  readonly callback: JobCallback | null;
  /** null: the server's result TTL. */
  readonly keepMs: number | null;
}

/** Validates a create request's spec against the limits and the models. */
export function validateJobSpec(
  request: JobRequest,
  models: ModelCatalog,
  defaultModel: string,
): ValidJobSpec {
  const onInvalid = request.onInvalid || "keep";
  if (onInvalid !== "keep" && onInvalid !== "reject")
    throw new InvalidInputError("on_invalid", `expected keep or reject, got ${echo(onInvalid)}`);
  const model = modelNamed("model_id", request.modelId || defaultModel, models);
  return {
    model,
    priority: validatePriority(request.priority, "low"),
    windowMs: parseWindow(request.completionWindow),
    jobId: validateId("job_id", request.jobId),
    rejectInvalid: onInvalid === "reject",
    callback: validateCallback(request.callbackUrl, request.callbackSecret),
    keepMs:
      request.resultTtl === undefined || request.resultTtl === ""
        ? null
        : parseDuration("result_ttl", request.resultTtl, RESULT_TTL_MS, "1m to 365d"),
  };
}

const WINDOW = /^(\d+(?:\.\d+)?)(s|m|h|d)$/;
const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** `90s`, `30m`, `24h`, `7d` -> ms, within {@link COMPLETION_WINDOW_MS}. */
export function parseWindow(text: string | undefined): number {
  if (text === undefined || text === "") return COMPLETION_WINDOW_MS.default;
  return parseDuration("completion_window", text, COMPLETION_WINDOW_MS, "1m to 7d");
}

/** A duration like `90s`, `30m`, `24h`, `7d` -> ms, within `bounds` (`range` says them). */
function parseDuration(
  field: string,
  text: string,
  bounds: { readonly min: number; readonly max: number },
  range: string,
): number {
  const match = WINDOW.exec(text);
  if (match === null)
    throw new InvalidInputError(
      field,
      `expected a duration like 90s, 30m, 24h or 7d, got ${echo(text)}`,
    );
  const ms = Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  if (ms < bounds.min || ms > bounds.max)
    throw new InvalidInputError(field, `must be from ${range}, got ${text}`);
  return Math.round(ms);
}

function validateCallback(url: string | undefined, secret: string | undefined): JobCallback | null {
  if (url === undefined || url === "") {
    if (secret !== undefined && secret !== "")
      throw new InvalidInputError("callback_secret", "is set but callback_url is not");
    return null;
  }
  if (url.length > MAX_URL_LENGTH)
    throw new InvalidInputError("callback_url", `must be at most ${MAX_URL_LENGTH} characters`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidInputError("callback_url", `expected an http(s) URL, got ${echo(url)}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    throw new InvalidInputError("callback_url", `expected an http(s) URL, got ${echo(url)}`);
  if (secret !== undefined && secret.length > 1024)
    throw new InvalidInputError("callback_secret", "must be at most 1024 characters");
  return { url, secret: secret === undefined || secret === "" ? null : secret };
}

/** A line whose tensors are kept as they are: any but a float model's `input` shorthand. */
interface TensorLine {
  readonly inputs: readonly TypedTensor[];
  readonly named: boolean;
}

/** `#lengths` of an invalid line and of a {@link TensorLine}. */
const INVALID = -1;
const TENSORS = -2;

/**
 * A chunk of lines as it fills: the numbers of its float lines (a float model's `input`
 * shorthand, the common case) back to back in one buffer and their line numbers, offsets and
 * lengths in typed arrays, so that a chunk is a handful of allocations rather than several per
 * line. (An upload of millions of lines would otherwise leave the collector millions of small
 * objects that lived just long enough to be promoted.) Lines of other tensors keep their own.
 */
export class ChunkBuilder {
  #floats = new Float32Array(16 * 1024);
  #used = 0;
  #size = 0;
  #numbers = new Float64Array(CHUNK_LINES);
  #offsets = new Int32Array(CHUNK_LINES);
  /** A float line's number count, or {@link INVALID}, or {@link TENSORS}. */
  #lengths = new Int32Array(CHUNK_LINES);
  #ids: (string | null)[] = [];
  /** A float line's shape when it is not `[length]`, an invalid line, or a tensor line. */
  #extras: (readonly number[] | InvalidLine | TensorLine | undefined)[] = [];

  /** Lines added since the last {@link take}. */
  get size(): number {
    return this.#size;
  }

  /**
   * Adds a valid line; returns its tensors as stored (a float line's a view, valid until the next
   * add).
   */
  addValid(
    line: number,
    id: string | null,
    inputs: readonly ItemTensor[],
    named: boolean,
  ): readonly TypedTensor[] {
    const only = inputs[0] as ItemTensor;
    if (!named && inputs.length === 1 && only.name === PRIMARY && only.datatype === "FP32") {
      const data = this.#addFloats(line, id, only.data as ArrayLike<number>, only.shape);
      return [{ ...only, data }];
    }
    const tensors = inputs.map(
      (t): TypedTensor => ({
        ...t,
        data: t.datatype === "FP32" ? toFloat32("FP32", t.data) : (t.data as TensorData),
      }),
    );
    this.#push(line, id, 0, TENSORS, { inputs: tensors, named });
    return tensors;
  }

  addInvalid(line: InvalidLine): void {
    this.#push(line.line, line.id, 0, INVALID, line);
  }

  /** The chunk's lines (float inputs views of one buffer of their own); the builder starts over. */
  take(): JobLine[] {
    const floats = this.#floats.slice(0, this.#used);
    const lines: JobLine[] = [];
    for (let k = 0; k < this.#size; k++) {
      const extra = this.#extras[k];
      const length = this.#lengths[k] as number;
      const line = this.#numbers[k] as number;
      const id = this.#ids[k] ?? null;
      if (length === INVALID) lines.push(extra as InvalidLine);
      else if (length === TENSORS) lines.push({ line, id, ...(extra as TensorLine) });
      else {
        const offset = this.#offsets[k] as number;
        const shape = (extra as readonly number[] | undefined) ?? [length];
        const data = floats.subarray(offset, offset + length);
        lines.push({ line, id, inputs: [floatInput(shape, data)], named: false });
      }
    }
    this.#size = 0;
    this.#used = 0;
    this.#ids = [];
    this.#extras = [];
    return lines;
  }

  #addFloats(
    line: number,
    id: string | null,
    data: ArrayLike<number>,
    shape: readonly number[],
  ): Float32Array {
    const length = data.length;
    if (this.#used + length > this.#floats.length) {
      const grown = new Float32Array(Math.max(this.#floats.length * 2, this.#used + length));
      grown.set(this.#floats.subarray(0, this.#used));
      this.#floats = grown;
    }
    const offset = this.#used;
    this.#floats.set(data, offset);
    this.#used += length;
    const flat = shape.length === 1 && shape[0] === length;
    this.#push(line, id, offset, length, flat ? undefined : shape);
    return this.#floats.subarray(offset, offset + length);
  }

  #push(
    line: number,
    id: string | null,
    offset: number,
    length: number,
    extra: readonly number[] | InvalidLine | TensorLine | undefined,
  ): void {
    const k = this.#size++;
    if (k >= this.#numbers.length) {
      const grow = <T extends Float64Array | Int32Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.#numbers = grow(this.#numbers, (n) => new Float64Array(n));
      this.#offsets = grow(this.#offsets, (n) => new Int32Array(n));
      this.#lengths = grow(this.#lengths, (n) => new Int32Array(n));
    }
    this.#numbers[k] = line;
    this.#offsets[k] = offset;
    this.#lengths[k] = length;
    this.#ids[k] = id;
    this.#extras[k] = extra;
  }
}

/** Turns upload lines into a chunk's lines, and keeps the digest of what it read. */
export class LineReader {
  readonly #model: ModelInfo;
  readonly #hash: Hash;
  #lines = 0;
  #invalid = 0;

  constructor(spec: ValidJobSpec) {
    this.#model = spec.model;
    this.#hash = createHash("sha256");
    this.#hash.update(
      JSON.stringify([spec.model.name, spec.priority, spec.windowMs, spec.callback]),
    );
  }

  /** Lines read so far. */
  get lines(): number {
    return this.#lines;
  }
  /** Invalid lines read so far. */
  get invalid(): number {
    return this.#invalid;
  }

  /** Adds the line to `chunk`: its item, or why it has none; the error when it has none. */
  read(raw: RawLine, chunk: ChunkBuilder): InvalidLine | undefined {
    this.#lines++;
    const line =
      "text" in raw
        ? parsedLine(raw.line, raw.text, this.#model)
        : "value" in raw
          ? lineOf(raw.line, raw.value, this.#model)
          : invalid(raw.line, null, raw.malformed);
    if ("error" in line) {
      this.#invalid++;
      this.#hash.update(`${line.line}\u0000${line.id ?? ""}\u0000${line.error.message}\n`);
      chunk.addInvalid(line);
      return line;
    }
    const inputs = chunk.addValid(line.line, line.id, line.inputs, line.named);
    this.#hash.update(`${line.line}\u0000${line.id ?? ""}\u0000`);
    const only = inputs[0] as TypedTensor;
    if (!line.named && inputs.length === 1 && only.name === PRIMARY && only.datatype === "FP32")
      this.#hash.update(`${only.shape.join(",")}\u0000`);
    else
      for (const t of inputs) {
        this.#hash.update(`${line.named ? "*" : ""}${t.name}\u0000${t.datatype}\u0000`);
        this.#hash.update(`${t.shape.join(",")}\u0000`);
      }
    for (const t of inputs) this.#hash.update(toRawBytes(t.data));
    return undefined;
  }

  /** The digest of every line read (once, at the end). */
  digest(): string {
    return this.#hash.digest("hex");
  }
}

/** A line checked but not yet stored: its tensors as validation gave them. */
interface CheckedLine {
  readonly line: number;
  readonly id: string | null;
  readonly inputs: readonly ItemTensor[];
  readonly named: boolean;
}

function invalid(line: number, id: string | null, message: string): InvalidLine {
  return { line, id, error: failure("INVALID_ARGUMENT", `line ${line}: ${message}`) };
}

function parsedLine(line: number, text: string, model: ModelInfo): CheckedLine | InvalidLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return invalid(
      line,
      null,
      `not valid JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  return lineOf(line, value, model);
}

function lineOf(line: number, value: unknown, model: ModelInfo): CheckedLine | InvalidLine {
  let id: string | null = null;
  try {
    if (Array.isArray(value))
      return { line, id, inputs: validateItemTensors("", { input: value }, model), named: false };
    if (typeof value !== "object" || value === null)
      return invalid(
        line,
        null,
        'expected {"input": [numbers...]}, {"inputs": {name: tensor, ...}} or [numbers...]',
      );
    id = validateId("id", (value as { id?: unknown }).id) ?? null;
    const inputs = validateItemTensors("", value, model);
    const named = (value as { inputs?: unknown }).inputs != null;
    return { line, id, inputs, named };
  } catch (error) {
    if (error instanceof InvalidInputError) return invalid(line, id, error.message);
    throw error;
  }
}
