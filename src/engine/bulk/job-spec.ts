/**
 * What a job may be: its spec's rules and the rules of each of its lines. A line that breaks one
 * is not an error of the upload but an outcome of its own, INVALID_ARGUMENT with a message that
 * names the line and the field (`line 3512: input[2]: expected a finite number, got "x"`).
 */
import { createHash, type Hash } from "node:crypto";
import { echo, failure, InvalidInputError } from "../errors.js";
import type { ModelCatalog, ModelInfo } from "../inference-pool.js";
import type { Priority } from "../types.js";
import { modelNamed, validateId, validatePriority, validateTensor } from "../validation.js";
import type { JobCallback, JobLine, JobRequest, RawLine } from "./job-types.js";

/** The completion window: default and bounds, ms. */
export const COMPLETION_WINDOW_MS = Object.freeze({
  min: 60_000,
  max: 7 * 24 * 3_600_000,
  default: 24 * 3_600_000,
});

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
  return {
    model: modelNamed("model_id", request.modelId || defaultModel, models),
    priority: validatePriority(request.priority, "low"),
    windowMs: parseWindow(request.completionWindow),
    jobId: validateId("job_id", request.jobId),
    rejectInvalid: onInvalid === "reject",
    callback: validateCallback(request.callbackUrl, request.callbackSecret),
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
  const match = WINDOW.exec(text);
  if (match === null)
    throw new InvalidInputError(
      "completion_window",
      `expected a duration like 90s, 30m, 24h or 7d, got ${echo(text)}`,
    );
  const ms = Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  if (ms < COMPLETION_WINDOW_MS.min || ms > COMPLETION_WINDOW_MS.max)
    throw new InvalidInputError("completion_window", `must be from 1m to 7d, got ${text}`);
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

/** Turns upload lines into stored lines, and keeps the digest of what it read. */
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

  /** The line as it is stored: its item, or why it has none. */
  read(raw: RawLine): JobLine {
    this.#lines++;
    const line =
      "value" in raw
        ? lineOf(raw.line, raw.value, this.#model)
        : invalid(raw.line, null, raw.malformed);
    if ("error" in line) {
      this.#invalid++;
      this.#hash.update(`${line.line}\u0000${line.id ?? ""}\u0000${line.error.message}\n`);
    } else {
      this.#hash.update(`${line.line}\u0000${line.id ?? ""}\u0000${line.shape.join(",")}\u0000`);
      this.#hash.update(
        new Uint8Array(line.input.buffer, line.input.byteOffset, line.input.byteLength),
      );
    }
    return line;
  }

  /** The digest of every line read (once, at the end). */
  digest(): string {
    return this.#hash.digest("hex");
  }
}

function invalid(line: number, id: string | null, message: string): JobLine {
  return { line, id, error: failure("INVALID_ARGUMENT", `line ${line}: ${message}`) };
}

function lineOf(line: number, value: unknown, model: ModelInfo): JobLine {
  let id: string | null = null;
  try {
    if (Array.isArray(value)) return validLine(line, null, value, undefined, model);
    if (typeof value !== "object" || value === null)
      return invalid(line, null, 'expected {"input": [numbers...]} or [numbers...]');
    const { input, id: rawId, shape } = value as { input?: unknown; id?: unknown; shape?: unknown };
    id = validateId("id", rawId) ?? null;
    return validLine(line, id, input, shape, model);
  } catch (error) {
    if (error instanceof InvalidInputError) return invalid(line, id, error.message);
    throw error;
  }
}

function validLine(
  line: number,
  id: string | null,
  input: unknown,
  shape: unknown,
  model: ModelInfo,
): JobLine {
  const tensor = validateTensor("", input, shape, model);
  return { line, id, input: Float32Array.from(tensor.data), shape: tensor.shape };
}
