/**
 * What a reload of the model repository does, decided apart from the threads that carry it out:
 * per model, keep the version that serves, leave one whose files failed before as it is, or try
 * its files ({@link planReload}); then, from what the new threads loaded, which version serves
 * each model and what the catalog says of it ({@link settleReload}). A model whose new files do
 * not load keeps the version loaded before.
 */
import type {
  EngineLogger,
  ModelCatalog,
  ModelInfo,
  ModelReloadOutcome,
  TensorSpec,
} from "../engine/index.js";
import type { ModelLoadReport, TensorInfo, WorkerModel, WorkerModelVersion } from "./messages.js";
import { ModelFileError } from "./model-files.js";
import type { RepositoryEntry } from "./model-repository.js";

/** Model batch limit when neither config.json nor the graph sets one. */
export const DEFAULT_MODEL_MAX_BATCH_SIZE = 1024;

/** A loaded version of a model: what later threads load again when they keep it. */
export interface Served {
  readonly entry: RepositoryEntry;
  readonly version: WorkerModelVersion;
  readonly loadedAt: number;
}

/** The models the threads serve, and the catalog. */
export interface ServingSet {
  readonly served: Map<string, Served>;
  readonly catalog: Map<string, ModelInfo>;
}

/** What a reload does with one model of the repository. */
export type Step =
  | { readonly kind: "keep"; readonly name: string; readonly served: Served }
  | { readonly kind: "untried"; readonly name: string; readonly info: ModelInfo }
  | {
      readonly kind: "try";
      readonly entry: RepositoryEntry;
      readonly version: WorkerModelVersion | undefined;
      readonly problem: string | undefined;
      readonly previous: Served | undefined;
    };

/** The models the new threads load: each kept version, and each tried one with its fallback. */
export function workerModels(steps: readonly Step[]): WorkerModel[] {
  const models: WorkerModel[] = [];
  for (const step of steps) {
    if (step.kind === "keep") models.push({ name: step.name, versions: [step.served.version] });
    if (step.kind !== "try") continue;
    const versions = [step.version, step.previous?.version].filter((v) => v !== undefined);
    if (versions.length > 0) models.push({ name: step.entry.name, versions });
  }
  return models;
}

/**
 * Decides per model of the repository's `entries`: keep the served version (its files did not
 * change), leave it as it is (its files failed before and did not change, unless `retryFailed`),
 * or try its files (read by `read`). `tried` keeps the fingerprint of the files each model last
 * tried.
 */
export async function planReload(
  entries: readonly RepositoryEntry[],
  previous: ServingSet | undefined,
  tried: Map<string, string>,
  retryFailed: boolean,
  read: (entry: RepositoryEntry) => Promise<WorkerModelVersion>,
): Promise<Step[]> {
  const steps: Step[] = [];
  for (const entry of entries) {
    const served = previous?.served.get(entry.name);
    const info = previous?.catalog.get(entry.name);
    if (served !== undefined && served.entry.fingerprint === entry.fingerprint) {
      steps.push({ kind: "keep", name: entry.name, served });
      continue;
    }
    if (!retryFailed && tried.get(entry.name) === entry.fingerprint) {
      if (served !== undefined) steps.push({ kind: "keep", name: entry.name, served });
      else if (info !== undefined) steps.push({ kind: "untried", name: entry.name, info });
      continue;
    }
    tried.set(entry.name, entry.fingerprint);
    let version: WorkerModelVersion | undefined;
    let problem = entry.problem;
    if (problem === undefined) {
      try {
        version = await read(entry);
      } catch (error) {
        // Only a reason that names the model's own paths is shown; others could name the server's.
        problem =
          error instanceof ModelFileError ? error.message : "the model's files could not be read";
      }
    }
    steps.push({ kind: "try", entry, version, problem, previous: served });
  }
  return steps;
}

/**
 * What each step came to, given what the threads loaded (`reports`): the models that now serve,
 * the catalog, the models whose version is new (`fresh`), and each model's outcome.
 */
export function settleReload(
  steps: readonly Step[],
  reports: readonly ModelLoadReport[],
  previous: ServingSet | undefined,
  now: number,
  log: EngineLogger,
): ServingSet & { fresh: Map<string, ModelInfo>; outcomes: ModelReloadOutcome[] } {
  const served = new Map<string, Served>();
  const catalog = new Map<string, ModelInfo>();
  const outcomes: ModelReloadOutcome[] = [];
  const fresh = new Map<string, ModelInfo>();
  for (const step of steps) {
    const name = nameOf(step);
    const report = reports.find((r) => r.name === name);
    if (step.kind === "untried") {
      catalog.set(name, step.info);
      outcomes.push({ name, outcome: "unchanged" });
      continue;
    }
    if (step.kind === "keep") {
      const info = previous?.catalog.get(name);
      if (report?.ok === true && info !== undefined) {
        served.set(name, step.served);
        catalog.set(name, info);
        outcomes.push({ name, outcome: "unchanged" });
      } else {
        const reason = report?.errors.join("; ") ?? "not loaded";
        catalog.set(name, unavailable(step.served.entry, reason, report));
        outcomes.push({ name, outcome: "failed", reason });
      }
      continue;
    }
    const { entry, previous: before } = step;
    const newReason = step.problem ?? report?.errors[0];
    if (report?.ok === true && report.version === 0 && step.version !== undefined) {
      const version: Served = { entry, version: step.version, loadedAt: now };
      const info = catalogEntry(version, report);
      served.set(name, version);
      catalog.set(name, info);
      fresh.set(name, info);
      outcomes.push({ name, outcome: before === undefined ? "added" : "updated" });
      log.info(
        { model: name, provider: report.provider, itemShape: info.itemShape },
        before === undefined ? "model loaded" : "model updated",
      );
    } else if (report?.ok === true && before !== undefined) {
      const reloadError = newReason ?? "not loaded";
      served.set(name, before);
      catalog.set(name, { ...catalogEntry(before, report), reloadError });
      outcomes.push({ name, outcome: "failed", reason: reloadError });
      log.warn(
        { model: name, reason: reloadError },
        "new model files did not load; the version loaded before keeps serving",
      );
    } else {
      const reason = newReason ?? report?.errors.join("; ") ?? "not loaded";
      catalog.set(name, unavailable(entry, reason, report));
      outcomes.push({ name, outcome: "failed", reason });
      log.warn({ model: name, reason }, "model unavailable");
    }
  }
  return { served, catalog, fresh, outcomes };
}

/** The model a step is about. */
export function nameOf(step: Step): string {
  return step.kind === "try" ? step.entry.name : step.name;
}

/** A catalog over a map of models. */
export function catalogOf(byName: ReadonlyMap<string, ModelInfo>): ModelCatalog {
  return { get: (name) => byName.get(name), list: () => [...byName.values()] };
}

/** The catalog entry of a loaded version, from its config and the graph the thread reported. */
function catalogEntry(served: Served, report: ModelLoadReport): ModelInfo {
  const { entry } = served;
  const input = report.inputs.find((i) => i.name === (entry.inputName ?? report.inputs[0]?.name));
  const graphDims = input?.dims ?? [];
  const itemShape =
    entry.inputShape ?? graphDims.slice(1).map((d) => (typeof d === "number" && d > 0 ? d : -1));
  const graphBatch = graphDims[0];
  const maxBatchSize =
    entry.maxBatchSize ??
    (typeof graphBatch === "number" && graphBatch > 0 ? graphBatch : DEFAULT_MODEL_MAX_BATCH_SIZE);
  return {
    name: entry.name,
    available: true,
    itemShape,
    maxBatchSize,
    maxWaitTimeMs: entry.maxWaitTimeMs,
    preferredBatchSizes: entry.preferredBatchSizes,
    instanceCount: entry.instanceCount,
    outputKind: entry.outputKind,
    labels: entry.labels,
    executionProvider: report.provider,
    providerFallback: report.fallbackReason,
    description: entry.description,
    loadedAt: served.loadedAt,
    version: entry.version,
    inputName: input?.name,
    outputName: entry.outputName ?? report.outputs[0]?.name,
    inputs: report.inputs.map(specOf),
    outputs: report.outputs.map(specOf),
    padding: entry.padding,
  };
}

function unavailable(
  entry: RepositoryEntry,
  reason: string,
  report: ModelLoadReport | undefined,
): ModelInfo {
  return {
    name: entry.name,
    available: false,
    reason,
    itemShape: entry.inputShape ?? [-1],
    maxBatchSize: entry.maxBatchSize ?? 1,
    maxWaitTimeMs: entry.maxWaitTimeMs,
    preferredBatchSizes: entry.preferredBatchSizes,
    instanceCount: entry.instanceCount,
    outputKind: entry.outputKind,
    labels: entry.labels,
    description: entry.description,
    version: entry.version,
    inputs: report?.inputs.map(specOf) ?? [],
    outputs: report?.outputs.map(specOf) ?? [],
  };
}

/** ONNX Runtime's element types by their names in the Open Inference Protocol. */
const DATATYPES: Readonly<Record<string, string>> = {
  float32: "FP32",
  float16: "FP16",
  float64: "FP64",
  int64: "INT64",
  int32: "INT32",
  int16: "INT16",
  int8: "INT8",
  uint8: "UINT8",
  uint16: "UINT16",
  uint32: "UINT32",
  uint64: "UINT64",
  bool: "BOOL",
  string: "BYTES",
};

/** A graph value as ListModels shows it: OIP datatype, symbolic or unknown dims as -1. */
function specOf(info: TensorInfo): TensorSpec {
  return {
    name: info.name,
    datatype: DATATYPES[info.type] ?? info.type.toUpperCase(),
    shape: info.dims.map((d) => (typeof d === "number" && d > 0 ? d : -1)),
    dimNames: info.dims.map((d) => (typeof d === "string" ? d : "")),
  };
}

/** Why a model an admin unloaded is unavailable. */
export const UNLOADED = "unloaded by an admin; a load serves it again";

/** The models out of scope of a reload, kept as they are: what serves, and what is listed. */
export function unchangedSteps(
  previous: ServingSet | undefined,
  keep: (name: string) => boolean,
): Step[] {
  const steps: Step[] = [];
  for (const [name, info] of previous?.catalog ?? []) {
    if (!keep(name)) continue;
    const served = previous?.served.get(name);
    steps.push(
      served !== undefined ? { kind: "keep", name, served } : { kind: "untried", name, info },
    );
  }
  return steps;
}

/** The catalog in the repository's order (a scoped reload settles its models last). */
export function inRepositoryOrder(
  catalog: Map<string, ModelInfo>,
  entries: readonly { readonly name: string }[],
): Map<string, ModelInfo> {
  const out = new Map<string, ModelInfo>();
  for (const { name } of entries) {
    const info = catalog.get(name);
    if (info !== undefined) out.set(name, info);
  }
  for (const [name, info] of catalog) if (!out.has(name)) out.set(name, info);
  return out;
}

/** A model an admin unloaded, as the catalog lists it: what it was, unavailable. */
export function unloadedInfo(name: string, info: ModelInfo | undefined): ModelInfo {
  return {
    ...(info ?? { name, itemShape: [-1], maxBatchSize: 1, outputKind: "raw" }),
    available: false,
    reason: UNLOADED,
    loadedAt: undefined,
    reloadError: undefined,
  };
}

/**
 * The outcomes and catalog once the models in `startError` (name: why) did not get the new
 * threads they needed: each such outcome is `failed` with the reason, and a version still serving
 * says in the catalog why the new one is not.
 */
export function withStartErrors(
  outcomes: ModelReloadOutcome[],
  catalog: Map<string, ModelInfo>,
  startError: ReadonlyMap<string, string>,
): void {
  for (const [k, outcome] of outcomes.entries()) {
    const why = startError.get(outcome.name);
    if (why === undefined) continue;
    outcomes[k] = { name: outcome.name, outcome: "failed", reason: why };
    const info = catalog.get(outcome.name);
    if (info?.available === true) catalog.set(outcome.name, { ...info, reloadError: why });
  }
}
