/**
 * The models the inference threads serve, and their reloads. The models share one set of
 * INFERENCE_THREADS threads, each holding a session of every one of them, except a model whose
 * config sets `instance_count`: it has that many threads of its own (see `thread-sets.ts`), which
 * the batcher keeps busy as a lane of their own. A thread's sessions never change: a reload starts
 * new threads for the sets whose models changed (a model's own, or the shared one), warms them
 * up, and only then routes their model batches there; the old threads finish what they hold and
 * stop, and every other set serves on untouched. Each version's file is kept in memory, so new
 * threads can load a serving version again when its file was replaced by one that does not load.
 */
import {
  baseName,
  type EngineLogger,
  type InferencePool,
  type InferenceRequest,
  type InferenceResult,
  type Lane,
  type ModelCatalog,
  type ModelInfo,
  type ModelReloadOutcome,
  ModelUnavailableError,
} from "../engine/index.js";
import { firstLine } from "./error-text.js";
import type { ModelLoadReport, WorkerInit, WorkerModel } from "./messages.js";
import { readVersion } from "./model-files.js";
import { readModelRepository } from "./model-repository.js";
import {
  catalogOf,
  inRepositoryOrder,
  nameOf,
  planReload,
  type Step,
  settleReload,
  UNLOADED,
  unchangedSteps,
  unloadedInfo,
  withStartErrors,
  workerModels,
} from "./reload-plan.js";
import {
  afterStartFailures,
  groupOf,
  instancesOf,
  restarts,
  type Serving,
  SHARED,
  type StartedSet,
  servingThreads,
  ThreadsPool,
  threadsInSets,
} from "./thread-sets.js";
import {
  PIPELINE_DEPTH,
  runOn,
  type StartedThreads,
  startThreads,
  type ThreadStarter,
  type Threads,
} from "./threads.js";

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

/** What a {@link ModelHost} is made of: the repository, the threads and their settings, the log. */
export interface ModelHostSettings {
  readonly modelDir: string;
  /** Threads the models that set no `instance_count` share. */
  readonly threads: number;
  /**
   * Online threads of each set, beside its regular ones ({@link ThreadSet}).
   * @defaultValue 0
   */
  readonly onlineThreads?: number;
  readonly init: Omit<WorkerInit, "models">;
  readonly log: EngineLogger;
  /** Starts a set of threads. @defaultValue Piscina threads ({@link startThreads}) */
  readonly start?: ThreadStarter;
}

/** The models' threads, the catalog, and reloads (one at a time). */
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
  /** Models (by name, every version) an admin unloaded: reloads leave them out. */
  readonly #unloaded = new Set<string>();
  #current: Serving | undefined;
  /** Threads starting, so that a close meanwhile stops them too. */
  readonly #starting = new Set<Threads>();
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
    const own = current?.threadsOf.get(request.model);
    if (current === undefined || own === undefined || !current.served.has(request.model)) {
      const reason = current?.catalog.get(request.model)?.reason;
      throw new ModelUnavailableError(request.model, reason ?? "not in the model repository");
    }
    return runOn(own.piscina, request, signal);
  }

  get onlineThreads(): number {
    return this.#settings.onlineThreads ?? 0;
  }

  get allThreads(): number {
    return threadsInSets(this.#current?.threadsOf, this.threads);
  }

  laneOf(model: string): Lane | undefined {
    const own = this.#current?.threadsOf.get(model);
    return own === undefined ? undefined : { key: own.key, threads: own.threads };
  }

  reload(options: ReloadOptions = {}): Promise<readonly ModelReloadOutcome[]> {
    return this.#serially(() => this.#reload(options));
  }

  /**
   * Loads (or reloads) model `name` (every version its policy serves) from the repository, and
   * lifts an unload of it; the other models' files are not read again, and they keep their
   * versions. Its outcomes; none when the repository has no such model.
   */
  load(name: string, options: ReloadOptions = {}): Promise<readonly ModelReloadOutcome[]> {
    return this.#serially(() => {
      this.#unloaded.delete(name);
      return this.#reload({ ...options, retryFailed: true }, name);
    });
  }

  /**
   * Stops serving model `name` (every version): it stays listed, unavailable, and reloads leave
   * it out until {@link load} brings it back. Its outcomes; none when nothing of that name serves
   * or is listed.
   */
  unload(name: string): Promise<readonly ModelReloadOutcome[]> {
    return this.#serially(async () => {
      const current = this.#current;
      const names = [...(current?.catalog.keys() ?? [])].filter((n) => baseName(n) === name);
      if (current === undefined || names.length === 0) return [];
      this.#unloaded.add(name);
      if (names.some((n) => current.served.has(n)))
        return this.#reload({ retryFailed: false }, name);
      // Nothing of it serves: no threads to change, only what the catalog says.
      for (const n of names) {
        const info = current.catalog.get(n) as ModelInfo;
        current.catalog.set(n, { ...info, available: false, reason: UNLOADED });
      }
      return names.map(
        (n): ModelReloadOutcome => ({ name: n, outcome: "removed", reason: UNLOADED }),
      );
    });
  }

  #serially<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#reloads.then(work);
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
    await Promise.all([...this.#starting].map((piscina) => piscina.destroy()));
    const serving = new Set([...(this.#current?.threadsOf.values() ?? [])].map((t) => t.piscina));
    await Promise.all([...serving].map(end));
    await Promise.all(this.#retiring);
  }

  /**
   * Reads the repository and serves what changed; with `only`, the models of that name alone
   * (the others keep what they serve, whatever their files hold now).
   */
  async #reload(options: ReloadOptions, only?: string): Promise<readonly ModelReloadOutcome[]> {
    if (this.#closed) throw new Error("the inference pool is closed");
    const previous = this.#current;
    const inScope = (name: string) => only === undefined || baseName(name) === only;
    const unloaded = (name: string) => this.#unloaded.has(baseName(name));
    const entries = readModelRepository(this.#settings.modelDir);
    const planned = await planReload(
      entries.filter((e) => inScope(e.name) && !unloaded(e.name)),
      previous,
      this.#tried,
      options.retryFailed ?? true,
      readVersion,
    );
    const steps = [...planned, ...unchangedSteps(previous, (name) => !inScope(name))];
    // An unloaded model is listed, unavailable, as long as the repository has it.
    const held = entries.filter((e) => unloaded(e.name)).map((e) => e.name);
    const removed = [...(previous?.catalog.keys() ?? [])].filter(
      (name) => !steps.some((step) => nameOf(step) === name) && !held.includes(name),
    );
    const newlyUnloaded = held.filter((name) => previous?.served.has(name) === true);
    if (
      previous !== undefined &&
      removed.length === 0 &&
      newlyUnloaded.length === 0 &&
      steps.every((s) => s.kind !== "try")
    )
      return planned.map((step) => ({ name: nameOf(step), outcome: "unchanged" }));

    // The thread sets that change: a model's own set when its files are tried, the shared set
    // when any of its models is tried or its models are not the ones it holds.
    const groups = new Map<string, Step[]>();
    for (const step of steps) {
      const key = groupOf(step);
      if (key !== undefined) groups.set(key, [...(groups.get(key) ?? []), step]);
    }
    const started = new Map<string, StartedSet>();
    const notStarted = new Map<string, string>();
    await Promise.all(
      [...groups].map(async ([key, members]) => {
        if (!restarts(key, members, previous)) return;
        const threads = key === SHARED ? this.threads : instancesOf(members[0] as Step);
        try {
          started.set(key, { ...(await this.#start(workerModels(members), threads)), threads });
        } catch (error) {
          notStarted.set(key, firstLine(error));
          this.#log.warn({ err: error, models: members.map(nameOf) }, "threads did not start");
        }
      }),
    );
    await this.#unlessClosed(started);
    if (previous === undefined && started.size === 0 && notStarted.size > 0)
      throw new Error(`the inference threads did not start: ${[...notStarted.values()][0]}`);
    const { settled, startError } = afterStartFailures(steps, notStarted);
    for (const name of startError.keys()) this.#tried.delete(name);
    const threadsOf = servingThreads(settled, started, previous);
    const reports = [...threadsOf.values()].map((t) => t.report);
    for (const step of settled)
      if (step.kind === "try")
        for (const set of started.values())
          for (const report of set.reports)
            if (report.name === step.entry.name && !reports.includes(report)) reports.push(report);
    const { served, catalog, fresh, outcomes } = settleReload(
      settled,
      reports,
      previous,
      Date.now(),
      this.#log,
    );
    withStartErrors(outcomes, catalog, startError);
    for (const name of removed) {
      outcomes.push({ name, outcome: "removed" });
      this.#tried.delete(name);
      this.#log.info({ model: name }, "model removed from the repository; unloaded");
    }
    for (const name of held) {
      catalog.set(name, unloadedInfo(name, previous?.catalog.get(name)));
      this.#tried.delete(name);
      if (newlyUnloaded.includes(name)) {
        outcomes.push({ name, outcome: "removed", reason: UNLOADED });
        this.#log.info({ model: name }, "model unloaded");
      }
    }
    this.#logFallback(reports);
    for (const name of threadsOf.keys()) if (!served.has(name)) threadsOf.delete(name);
    try {
      if (fresh.size > 0 && previous !== undefined && options.warmUp !== undefined)
        await options.warmUp(
          new ThreadsPool(threadsOf, this.threads, this.onlineThreads),
          catalogOf(fresh),
        );
    } catch (error) {
      this.#log.warn({ err: error }, "warm-up of the reloaded models failed");
    }
    await this.#unlessClosed(started);
    this.#current = { threadsOf, served, catalog: inRepositoryOrder(catalog, entries) };
    // Threads no model serves on any more (replaced, removed, unloaded, or started for a version
    // that did not load) finish what they hold and stop.
    const serving = new Set([...threadsOf.values()].map((t) => t.piscina));
    const done = new Set([
      ...[...(previous?.threadsOf.values() ?? [])].map((t) => t.piscina),
      ...[...started.values()].map((t) => t.piscina),
    ]);
    for (const piscina of done) if (!serving.has(piscina)) this.#retire(piscina);
    return outcomes.filter((o) => inScope(o.name));
  }

  /** Once the host closed during a reload, stops the threads it started and ends the reload. */
  async #unlessClosed(started: ReadonlyMap<string, StartedSet>): Promise<void> {
    if (!this.#closed) return;
    await Promise.all([...started.values()].map((t) => t.piscina.destroy()));
    throw new Error("the inference pool is closed");
  }

  async #start(models: readonly WorkerModel[], threads: number): Promise<StartedThreads> {
    const init: WorkerInit = { ...this.#settings.init, models };
    const start = this.#settings.start ?? startThreads;
    let starting: Threads | undefined;
    try {
      const size = { threads, online: this.onlineThreads };
      const started = await start(init, size, (piscina) => {
        starting = piscina;
        this.#starting.add(piscina);
      });
      if (started.niceError !== undefined && this.#current === undefined)
        this.#log.warn(
          { nice: init.nice, reason: started.niceError },
          "inference threads keep the default priority",
        );
      return started;
    } finally {
      if (starting !== undefined) this.#starting.delete(starting);
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
