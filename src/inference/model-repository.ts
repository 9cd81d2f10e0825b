/**
 * The model repository on disk: `<dir>/<name>/model.onnx` plus an optional `config.json`, or the
 * Triton layout, `<dir>/<name>/<version>/model.onnx` with `config.json` in `<dir>/<name>/`, where
 * the highest numbered version serves. Reading it never throws for one bad model: that model is
 * reported unavailable with the reason. Reading it only lists and checks files; the model files
 * themselves are read by the pool.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { SETTING_BOUNDS } from "../config/bounds.js";
import { OPTION_BOUNDS, type OutputKind } from "../engine/index.js";

/** `config.json` beside a model, as written on disk (snake_case, like Triton's config). */
export interface ModelConfigFile {
  /** Most items per model batch. @defaultValue 1024 (or the graph's fixed batch dim) */
  max_batch_size?: number;
  /** This model's longest wait for a fuller batch, ms. @defaultValue the configured one */
  max_wait_time_ms?: number;
  /** This model's ONNX Runtime providers, in order. @defaultValue EXECUTION_PROVIDERS */
  execution_providers?: string[];
  /** Batch sizes the model runs best at: the largest one the waiting items fill runs at once. */
  preferred_batch_sizes?: number[];
  /** Inference threads of this model's own, each with its session. @defaultValue INFERENCE_THREADS */
  instance_count?: number;
  /** Graph input to feed. @defaultValue the first input */
  input_name?: string;
  /** Graph output to return. @defaultValue the first output */
  output_name?: string;
  /** Per-item input shape, -1 for any size. @defaultValue read from the graph */
  input_shape?: number[];
  /** `probabilities` (confidence = max), `logits` (softmax applied first) or `raw`. @defaultValue "raw" */
  output_kind?: OutputKind;
  labels?: string[];
  /**
   * Inputs whose dynamic axes items may differ in, by name, with the value to pad them with: such
   * items share model batches, padded to the longest, and outputs are cut back per item.
   */
  padding?: Record<string, number>;
  /** Which version folders serve (Triton's shape). @defaultValue {"latest": {"num_versions": 1}} */
  version_policy?: unknown;
  description?: string;
}

/** A model found in the repository. */
export interface RepositoryEntry {
  readonly name: string;
  /** Its model.onnx (in the version folder that serves, in the Triton layout). */
  readonly path: string;
  /** The version folder that serves, in the Triton layout; undefined in the flat one. */
  readonly version: string | undefined;
  readonly maxBatchSize: number | undefined;
  readonly maxWaitTimeMs: number | undefined;
  /** Batch sizes the model runs best at, ascending, without repeats. */
  readonly preferredBatchSizes: readonly number[] | undefined;
  /** The model's own providers, in order; the configured ones when undefined. */
  readonly executionProviders: readonly string[] | undefined;
  /** Threads of the model's own; the configured INFERENCE_THREADS when undefined. */
  readonly instanceCount: number | undefined;
  readonly inputName: string | undefined;
  readonly outputName: string | undefined;
  readonly inputShape: readonly number[] | undefined;
  readonly outputKind: OutputKind;
  readonly labels: readonly string[] | undefined;
  /** Pad values of the inputs whose dynamic axes may differ within a model batch, by name. */
  readonly padding: Readonly<Record<string, number>> | undefined;
  readonly description: string | undefined;
  /** Set when the entry cannot be loaded at all (bad config, missing file). */
  readonly problem: string | undefined;
  /**
   * The folder's other files (relative paths, `/`-separated): the candidates for the model's
   * external data, which ONNX Runtime reads beside a model too large for one file.
   */
  readonly otherFiles: readonly string[];
  /**
   * Size and modification time of every file of the folder: it changes when any of them is
   * replaced or rewritten, which is what a reload looks for.
   */
  readonly fingerprint: string;
}

/** Most files a model's folder may hold besides model.onnx and config.json. */
const MAX_OTHER_FILES = 256;

const NAME = /^[A-Za-z0-9._-]+$/;
/** A model's `max_wait_time_ms` is bounded as the configured one is. */
const MAX_WAIT_TIME_MS_LIMIT = OPTION_BOUNDS.maxWaitTimeMs[1];
const OUTPUT_KINDS: readonly OutputKind[] = ["probabilities", "logits", "raw"];
/** A model's `instance_count`, bounded as INFERENCE_THREADS is. */
const INSTANCE_COUNT_BOUNDS = SETTING_BOUNDS.threads;

/** A version folder's name in the Triton layout: a positive integer. */
const VERSION = /^[1-9][0-9]{0,8}$/;

/**
 * Lists the models under `dir`: every folder (but hidden ones) is a model, and one that holds no
 * model.onnx in either layout is listed unavailable, saying so. Throws only when `dir` itself
 * cannot be read.
 */
export function readModelRepository(dir: string): RepositoryEntry[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new Error(`model directory ${dir} does not exist`);
  const entries: RepositoryEntry[] = [];
  for (const name of readdirSync(dir).sort()) {
    const folder = join(dir, name);
    // A folder removed while the listing runs is skipped, not an error.
    if (name.startsWith(".") || statSync(folder, { throwIfNoEntry: false })?.isDirectory() !== true)
      continue;
    if (!NAME.test(name)) continue;
    if (existsSync(join(folder, "model.onnx"))) {
      entries.push(readEntry(name, folder, folder, undefined));
      continue;
    }
    const versions = readdirSync(folder)
      .filter((v) => VERSION.test(v) && existsSync(join(folder, v, "model.onnx")))
      .sort((a, b) => Number(b) - Number(a));
    const policy = versionPolicyIn(folder);
    if (typeof policy === "string") {
      entries.push({ ...readEntry(name, folder, folder, undefined), problem: policy });
      continue;
    }
    const served = servedVersions(policy, versions);
    if (served.length === 0) {
      entries.push(readEntry(name, folder, folder, undefined, NO_MODEL));
      continue;
    }
    // The latest served version is the model's own name; each other one `<name>/<version>`.
    served.forEach((version, k) => {
      const key = k === 0 ? name : `${name}/${version}`;
      entries.push(
        versions.includes(version)
          ? readEntry(key, folder, join(folder, version), version)
          : readEntry(
              key,
              folder,
              join(folder, version),
              version,
              `no model.onnx in version folder ${version}`,
            ),
      );
    });
  }
  return entries;
}

/** Which versions of a model serve (Triton's `version_policy`, in JSON). */
export type VersionPolicy =
  | { readonly latest: number }
  | { readonly all: true }
  | { readonly specific: readonly string[] };

/** The versions `policy` serves of those on disk (newest first), newest first. */
function servedVersions(policy: VersionPolicy, onDisk: readonly string[]): string[] {
  if ("all" in policy) return [...onDisk];
  if ("latest" in policy) return onDisk.slice(0, policy.latest);
  return [...policy.specific].sort((a, b) => Number(b) - Number(a));
}

/**
 * The `version_policy` of the config.json in `folder` (latest 1 when it has none, or when the
 * file is unreadable, which its entry reports); a string says what is wrong with it.
 */
function versionPolicyIn(folder: string): VersionPolicy | string {
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(join(folder, "config.json"), "utf8"));
  } catch {
    return { latest: 1 };
  }
  const policy = (config as { version_policy?: unknown } | null)?.version_policy;
  if (policy === undefined) return { latest: 1 };
  const wrong =
    'config.json: version_policy must be {"latest": {"num_versions": n}} (1..64), {"all": {}} or {"specific": {"versions": [1, 3]}}';
  if (typeof policy !== "object" || policy === null || Array.isArray(policy)) return wrong;
  const p = policy as {
    latest?: { num_versions?: unknown };
    all?: unknown;
    specific?: { versions?: unknown };
  };
  const keys = Object.keys(p);
  if (keys.length !== 1) return wrong;
  if (p.all !== undefined) return { all: true };
  if (p.latest !== undefined) {
    const n = p.latest?.num_versions;
    return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 64
      ? { latest: n }
      : wrong;
  }
  const versions = p.specific?.versions;
  if (
    !Array.isArray(versions) ||
    versions.length === 0 ||
    versions.length > 64 ||
    !versions.every((v) => Number.isInteger(v) && VERSION.test(String(v)))
  )
    return wrong;
  return { specific: [...new Set(versions.map(String))] };
}

/** Why a folder of the repository serves nothing. */
const NO_MODEL =
  "no model.onnx: neither <name>/model.onnx nor a version folder <name>/<number>/model.onnx (this server serves ONNX models)";

function fingerprintOf(paths: readonly string[]): string {
  return paths
    .map((path) => {
      const stat = statSync(path, { throwIfNoEntry: false });
      return stat === undefined ? "-" : `${stat.size}@${stat.mtimeMs}`;
    })
    .join("/");
}

/** The folder's files other than model.onnx and config.json, at any depth, sorted. */
function otherFilesOf(folder: string): string[] | undefined {
  const files = readdirSync(folder, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(folder, join(d.parentPath, d.name)).split(sep).join("/"))
    .filter((f) => f !== "model.onnx" && f !== "config.json")
    .sort();
  return files.length > MAX_OTHER_FILES ? undefined : files;
}

/**
 * One model: its config.json in `folder`, its model.onnx and the files beside it (its external
 * data) in `modelFolder`, which is `folder` itself or, in the Triton layout, the version folder.
 */
function readEntry(
  name: string,
  folder: string,
  modelFolder: string,
  version: string | undefined,
  missing?: string,
): RepositoryEntry {
  const path = join(modelFolder, "model.onnx");
  const configPath = join(folder, "config.json");
  const otherFiles = missing === undefined ? otherFilesOf(modelFolder) : [];
  const base: RepositoryEntry = {
    name,
    path,
    version,
    maxBatchSize: undefined,
    maxWaitTimeMs: undefined,
    preferredBatchSizes: undefined,
    executionProviders: undefined,
    instanceCount: undefined,
    inputName: undefined,
    outputName: undefined,
    inputShape: undefined,
    outputKind: "raw",
    labels: undefined,
    padding: undefined,
    description: undefined,
    problem:
      missing ??
      (otherFiles === undefined
        ? `the folder holds more than ${MAX_OTHER_FILES} files besides model.onnx and config.json`
        : undefined),
    otherFiles: otherFiles ?? [],
    // The version is part of it: a new version folder is a change even with equal files.
    fingerprint: `${version ?? ""}:${fingerprintOf([
      path,
      configPath,
      ...(otherFiles ?? []).map((f) => join(modelFolder, f)),
    ])}`,
  };
  if (base.problem !== undefined || !existsSync(configPath)) return base;
  try {
    const config = JSON.parse(readFileSync(configPath, "utf8")) as unknown;
    return { ...base, ...parseConfig(config) };
  } catch (error) {
    // A parse or rule error says what is wrong in the file; a read error would name its path.
    const readable =
      error instanceof SyntaxError || error instanceof TypeError || error instanceof RangeError;
    return {
      ...base,
      problem: readable
        ? `config.json: ${(error as Error).message}`
        : "config.json could not be read",
    };
  }
}

/** Validates a parsed `config.json`; throws naming the field. */
export function parseConfig(config: unknown): Partial<RepositoryEntry> {
  if (typeof config !== "object" || config === null || Array.isArray(config))
    throw new TypeError("expected a JSON object");
  const c = config as ModelConfigFile;
  const out: { -readonly [K in keyof RepositoryEntry]?: RepositoryEntry[K] } = {};
  if (c.max_batch_size !== undefined) {
    if (!Number.isInteger(c.max_batch_size) || c.max_batch_size < 1 || c.max_batch_size > 65536) {
      throw new RangeError(
        `max_batch_size must be an integer in 1..65536, got ${JSON.stringify(c.max_batch_size)}`,
      );
    }
    out.maxBatchSize = c.max_batch_size;
  }
  if (c.max_wait_time_ms !== undefined) {
    if (
      !Number.isInteger(c.max_wait_time_ms) ||
      c.max_wait_time_ms < 0 ||
      c.max_wait_time_ms > MAX_WAIT_TIME_MS_LIMIT
    ) {
      throw new RangeError(
        `max_wait_time_ms must be an integer in 0..${MAX_WAIT_TIME_MS_LIMIT}, got ${JSON.stringify(c.max_wait_time_ms)}`,
      );
    }
    out.maxWaitTimeMs = c.max_wait_time_ms;
  }
  if (c.preferred_batch_sizes !== undefined) {
    const sizes = c.preferred_batch_sizes;
    if (
      !Array.isArray(sizes) ||
      sizes.length === 0 ||
      sizes.length > 16 ||
      !sizes.every((n) => Number.isInteger(n) && n >= 1 && n <= 65536)
    )
      throw new RangeError(
        "preferred_batch_sizes must be a list of 1..16 integers in 1..65536, e.g. [4, 8]",
      );
    out.preferredBatchSizes = [...new Set(sizes)].sort((a, b) => a - b);
  }
  if (c.instance_count !== undefined) {
    const [low, high] = INSTANCE_COUNT_BOUNDS;
    if (!Number.isInteger(c.instance_count) || c.instance_count < low || c.instance_count > high)
      throw new RangeError(
        `instance_count must be an integer in ${low}..${high}, got ${JSON.stringify(c.instance_count)}`,
      );
    out.instanceCount = c.instance_count;
  }
  if (c.execution_providers !== undefined) {
    const providers = c.execution_providers;
    if (
      !Array.isArray(providers) ||
      providers.length === 0 ||
      providers.length > 8 ||
      !providers.every((p) => typeof p === "string" && /^[a-z0-9_]{1,32}$/.test(p))
    )
      throw new TypeError(
        'execution_providers must be a list of 1..8 provider names, e.g. ["cuda", "cpu"]',
      );
    out.executionProviders = providers;
  }
  for (const key of ["input_name", "output_name", "description"] as const) {
    if (c[key] !== undefined && typeof c[key] !== "string")
      throw new TypeError(`${key} must be a string`);
  }
  out.inputName = c.input_name;
  out.outputName = c.output_name;
  out.description = c.description;
  if (c.input_shape !== undefined) {
    if (
      !Array.isArray(c.input_shape) ||
      c.input_shape.length === 0 ||
      !c.input_shape.every((d) => d === -1 || (Number.isInteger(d) && d >= 1))
    ) {
      throw new RangeError("input_shape must be a non-empty array of positive integers or -1");
    }
    out.inputShape = c.input_shape;
  }
  if (c.output_kind !== undefined) {
    if (!OUTPUT_KINDS.includes(c.output_kind))
      throw new RangeError(`output_kind must be one of ${OUTPUT_KINDS.join(", ")}`);
    out.outputKind = c.output_kind;
  }
  if (c.labels !== undefined) {
    if (!Array.isArray(c.labels) || !c.labels.every((l) => typeof l === "string"))
      throw new TypeError("labels must be an array of strings");
    out.labels = c.labels;
  }
  if (c.padding !== undefined) {
    const entries =
      typeof c.padding === "object" && c.padding !== null && !Array.isArray(c.padding)
        ? Object.entries(c.padding)
        : undefined;
    if (
      entries === undefined ||
      entries.length === 0 ||
      entries.length > 64 ||
      !entries.every(([, v]) => typeof v === "number" && Number.isFinite(v))
    )
      throw new TypeError(
        'padding must map 1..64 input names to the number to pad each with, e.g. {"input_ids": 0, "attention_mask": 0}',
      );
    out.padding = Object.fromEntries(entries);
  }
  return out;
}
