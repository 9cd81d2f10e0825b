/**
 * The models the inference threads serve, and their reloads. The threads' sessions never
 * change: a reload starts a new generation of threads with the new model set, warms it up, and
 * only then routes new model batches to it; the previous generation finishes what it holds and
 * stops. Each version's file is kept in memory (once, shared by the threads), so a new
 * generation can load a serving version again when its file was replaced by one that does not
 * load.
 */
import { open } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  type EngineLogger,
  type InferencePool,
  type InferenceRequest,
  type InferenceResult,
  type ModelCatalog,
  type ModelInfo,
  type ModelReloadOutcome,
  ModelUnavailableError,
} from "../engine/index.js";
import type { ModelLoadReport, WorkerInit, WorkerModel, WorkerModelVersion } from "./messages.js";
import { type RepositoryEntry, readModelRepository } from "./model-repository.js";
import {
  GenerationPool,
  PIPELINE_DEPTH,
  runOn,
  type StartedThreads,
  startThreads,
  type Threads,
} from "./threads.js";

/** Model batch limit when neither config.json nor the graph sets one. */
export const DEFAULT_MODEL_MAX_BATCH_SIZE = 1024;

/** Options of a reload. */
export interface ReloadOptions {
  /**
   * Try again files that failed to load and have not changed since (an operator's explicit
   * reload does; the periodic watch does not, so a broken file is reported once).
   * @defaultValue true
   */
  readonly retryFailed?: boolean;
  /**
   * Runs on the new threads before they take traffic, with the models whose version is new:
   * the first batches of a new version then do not pay ONNX Runtime's first-run costs.
   */
  readonly warmUp?: (pool: InferencePool, models: ModelCatalog) => Promise<void>;
}

/** What a {@link ModelHost} is made of: the repository, the threads' settings, the log. */
export interface ModelHostSettings {
  readonly modelDir: string;
  readonly threads: number;
  readonly init: Omit<WorkerInit, "models">;
  readonly log: EngineLogger;
}

/** A loaded version of a model: what a later generation loads again when it keeps it. */
interface Served {
  readonly entry: RepositoryEntry;
  readonly version: WorkerModelVersion;
  readonly loadedAt: number;
}

/** One set of threads and the models they hold. */
interface Generation {
  readonly piscina: Threads;
  readonly served: ReadonlyMap<string, Served>;
  readonly catalog: ReadonlyMap<string, ModelInfo>;
}

/** What a reload does with one model of the repository. */
type Step =
  | { readonly kind: "keep"; readonly name: string; readonly served: Served }
  | { readonly kind: "untried"; readonly name: string; readonly info: ModelInfo }
  | {
      readonly kind: "try";
      readonly entry: RepositoryEntry;
      readonly version: WorkerModelVersion | undefined;
      readonly problem: string | undefined;
      readonly previous: Served | undefined;
    };

/** The threads of the serving generation, its catalog, and reloads (one at a time). */
export class ModelHost implements InferencePool {
  readonly pipelineDepth = PIPELINE_DEPTH;
  readonly threads: number;
  readonly catalog: ModelCatalog = {
    get: (name) => this.#current?.catalog.get(name),
    list: () => [...(this.#current?.catalog.values() ?? [])],
  };
  readonly #settings: ModelHostSettings;
  readonly #log: EngineLogger;
  /** Fingerprint of each model's files when a reload last tried them. */
  readonly #tried = new Map<string, string>();
  readonly #retiring = new Set<Promise<void>>();
  #current: Generation | undefined;
  #starting: Threads | undefined;
  #reloads: Promise<unknown> = Promise.resolve();
  #watch: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(settings: ModelHostSettings) {
    this.#settings = settings;
    this.#log = settings.log;
    this.threads = settings.threads;
  }

  async run(request: InferenceRequest, signal?: AbortSignal): Promise<InferenceResult> {
    const current = this.#current;
    if (current === undefined || !current.served.has(request.model)) {
      const reason = current?.catalog.get(request.model)?.reason;
      throw new ModelUnavailableError(request.model, reason ?? "not in the model repository");
    }
    return runOn(current.piscina, request, signal);
  }

  reload(options: ReloadOptions = {}): Promise<readonly ModelReloadOutcome[]> {
    const next = this.#reloads.then(() => this.#reload(options));
    this.#reloads = next.catch(() => undefined);
    return next;
  }

  watch(intervalMs: number, options: ReloadOptions = {}): void {
    clearInterval(this.#watch);
    this.#watch = setInterval(() => {
      this.reload({ ...options, retryFailed: false }).catch((error: unknown) =>
        this.#log.warn({ err: error }, "model repository watch failed"),
      );
    }, intervalMs);
    this.#watch.unref();
  }

  async close(): Promise<void> {
    await this.#stop((piscina) => piscina.close());
  }

  async destroy(): Promise<void> {
    await this.#stop((piscina) => piscina.destroy());
  }

  async #stop(end: (piscina: Threads) => Promise<void>): Promise<void> {
    this.#closed = true;
    clearInterval(this.#watch);
    await this.#starting?.destroy();
    if (this.#current !== undefined) await end(this.#current.piscina);
    await Promise.all(this.#retiring);
  }

  async #reload(options: ReloadOptions): Promise<readonly ModelReloadOutcome[]> {
    if (this.#closed) throw new Error("the inference pool is closed");
    const previous = this.#current;
    const steps = await this.#plan(options.retryFailed ?? true);
    const removed = [...(previous?.catalog.keys() ?? [])].filter(
      (name) => !steps.some((step) => nameOf(step) === name),
    );
    if (previous !== undefined && removed.length === 0 && steps.every((s) => s.kind !== "try"))
      return steps.map((step) => ({ name: nameOf(step), outcome: "unchanged" }));

    const models: WorkerModel[] = [];
    for (const step of steps) {
      if (step.kind === "keep") models.push({ name: step.name, versions: [step.served.version] });
      if (step.kind !== "try") continue;
      const versions = [step.version, step.previous?.version].filter((v) => v !== undefined);
      if (versions.length > 0) models.push({ name: step.entry.name, versions });
    }
    let started: StartedThreads;
    try {
      started = await this.#start(models);
    } catch (error) {
      if (previous === undefined) throw error;
      // The new threads did not start: everything keeps serving as it was.
      const reason = `the new inference threads did not start: ${firstLineOf(error)}`;
      this.#log.warn({ err: error }, "model reload failed; the loaded models keep serving");
      for (const step of steps) if (step.kind === "try") this.#tried.delete(step.entry.name);
      return steps.map((step) =>
        step.kind === "try"
          ? { name: step.entry.name, outcome: "failed", reason }
          : { name: nameOf(step), outcome: "unchanged" },
      );
    }
    const { served, catalog, fresh, outcomes } = this.#settle(steps, started.reports, previous);
    for (const name of removed) {
      outcomes.push({ name, outcome: "removed" });
      this.#tried.delete(name);
      this.#log.info({ model: name }, "model removed from the repository; unloaded");
    }
    this.#logFallback(started.reports);
    const pool = new GenerationPool(started.piscina, this.threads);
    try {
      if (fresh.size > 0 && previous !== undefined && options.warmUp !== undefined)
        await options.warmUp(pool, catalogOf(fresh));
    } catch (error) {
      this.#log.warn({ err: error }, "warm-up of the reloaded models failed");
    }
    if (this.#closed) {
      await started.piscina.destroy();
      throw new Error("the inference pool is closed");
    }
    this.#current = { piscina: started.piscina, served, catalog };
    this.#starting = undefined;
    if (previous !== undefined) this.#retire(previous.piscina);
    return outcomes;
  }

  /** What each step came to, given what the new threads loaded: the new generation's models. */
  #settle(
    steps: readonly Step[],
    reports: readonly ModelLoadReport[],
    previous: Generation | undefined,
  ): {
    served: Map<string, Served>;
    catalog: Map<string, ModelInfo>;
    fresh: Map<string, ModelInfo>;
    outcomes: ModelReloadOutcome[];
  } {
    const now = Date.now();
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
          catalog.set(name, unavailable(step.served.entry, reason));
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
        this.#log.info(
          { model: name, provider: report.provider, itemShape: info.itemShape },
          before === undefined ? "model loaded" : "model updated",
        );
      } else if (report?.ok === true && before !== undefined) {
        const reloadError = newReason ?? "not loaded";
        served.set(name, before);
        catalog.set(name, { ...catalogEntry(before, report), reloadError });
        outcomes.push({ name, outcome: "failed", reason: reloadError });
        this.#log.warn(
          { model: name, reason: reloadError },
          "new model files did not load; the version loaded before keeps serving",
        );
      } else {
        const reason = newReason ?? report?.errors.join("; ") ?? "not loaded";
        catalog.set(name, unavailable(entry, reason));
        outcomes.push({ name, outcome: "failed", reason });
        this.#log.warn({ model: name, reason }, "model unavailable");
      }
    }
    return { served, catalog, fresh, outcomes };
  }

  /** Decides per model: keep the served version, leave it as it is, or try its files. */
  async #plan(retryFailed: boolean): Promise<Step[]> {
    const previous = this.#current;
    const steps: Step[] = [];
    for (const entry of readModelRepository(this.#settings.modelDir)) {
      const served = previous?.served.get(entry.name);
      const info = previous?.catalog.get(entry.name);
      if (served !== undefined && served.entry.fingerprint === entry.fingerprint) {
        steps.push({ kind: "keep", name: entry.name, served });
        continue;
      }
      if (!retryFailed && this.#tried.get(entry.name) === entry.fingerprint) {
        if (served !== undefined) steps.push({ kind: "keep", name: entry.name, served });
        else if (info !== undefined) steps.push({ kind: "untried", name: entry.name, info });
        continue;
      }
      this.#tried.set(entry.name, entry.fingerprint);
      let version: WorkerModelVersion | undefined;
      let problem = entry.problem;
      if (problem === undefined) {
        try {
          version = await readVersion(entry);
        } catch {
          problem = "the model's files could not be read";
        }
      }
      steps.push({ kind: "try", entry, version, problem, previous: served });
    }
    return steps;
  }

  async #start(models: readonly WorkerModel[]): Promise<StartedThreads> {
    const init: WorkerInit = { ...this.#settings.init, models };
    try {
      const started = await startThreads(init, this.threads, (piscina) => {
        this.#starting = piscina;
      });
      if (started.niceError !== undefined && this.#current === undefined)
        this.#log.warn(
          { nice: init.nice, reason: started.niceError },
          "inference threads keep the default priority",
        );
      return started;
    } catch (error) {
      this.#starting = undefined;
      throw error;
    }
  }

  #retire(piscina: Threads): void {
    // Model batches already handed to the old threads finish there.
    const done = piscina
      .close()
      .catch((error: unknown) => this.#log.warn({ err: error }, "old inference threads"))
      .finally(() => this.#retiring.delete(done));
    this.#retiring.add(done);
  }

  #logFallback(reports: readonly ModelLoadReport[]): void {
    if (this.#current !== undefined) return;
    const fallback = reports.find((r) => r.fallbackReason !== undefined)?.fallbackReason;
    if (fallback !== undefined)
      this.#log.warn(
        { reason: fallback },
        "preferred execution provider unavailable; running on CPU",
      );
  }
}

function nameOf(step: Step): string {
  return step.kind === "try" ? step.entry.name : step.name;
}

function firstLineOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return (text.split("\n")[0] ?? text).slice(0, 300);
}

function catalogOf(byName: ReadonlyMap<string, ModelInfo>): ModelCatalog {
  return { get: (name) => byName.get(name), list: () => [...byName.values()] };
}

function workerSettings(
  entry: RepositoryEntry,
): Omit<WorkerModelVersion, "bytes" | "externalData"> {
  return {
    inputName: entry.inputName,
    outputName: entry.outputName,
    inputShape: entry.inputShape,
    outputKind: entry.outputKind,
  };
}

/**
 * Reads a version's files: model.onnx, and those of the folder's other files whose path the
 * model's bytes contain (an external data file is named in the model by its relative path).
 */
async function readVersion(entry: RepositoryEntry): Promise<WorkerModelVersion> {
  const bytes = await readShared(entry.path);
  const model = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const externalData = [];
  for (const path of entry.otherFiles) {
    if (model.includes(path))
      externalData.push({ path, bytes: await readShared(join(dirname(entry.path), path)) });
  }
  return { ...workerSettings(entry), bytes, externalData };
}

/** Reads a file into shared memory, which every thread can read without a copy of its own. */
async function readShared(path: string): Promise<Uint8Array> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    const bytes = new Uint8Array(new SharedArrayBuffer(size));
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await file.read(bytes, offset, size - offset, offset);
      if (bytesRead === 0) throw new Error(`${path} ended at byte ${offset} of ${size}`);
      offset += bytesRead;
    }
    return bytes;
  } finally {
    await file.close();
  }
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
    outputKind: entry.outputKind,
    labels: entry.labels,
    executionProvider: report.provider,
    description: entry.description,
    loadedAt: served.loadedAt,
  };
}

function unavailable(entry: RepositoryEntry, reason: string): ModelInfo {
  return {
    name: entry.name,
    available: false,
    reason,
    itemShape: entry.inputShape ?? [-1],
    maxBatchSize: entry.maxBatchSize ?? 1,
    outputKind: entry.outputKind,
    labels: entry.labels,
    description: entry.description,
  };
}
