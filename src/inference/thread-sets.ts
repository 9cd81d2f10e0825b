/**
 * How models share inference threads: a model whose config sets `instance_count` has a set of
 * its own, the others share one set of INFERENCE_THREADS threads; which sets a reload starts
 * anew, and which threads serve each model afterwards.
 */
import {
  type InferencePool,
  type InferenceRequest,
  type InferenceResult,
  type Lane,
  ModelUnavailableError,
} from "../engine/index.js";
import type { ModelLoadReport } from "./messages.js";
import { nameOf, type ServingSet, type Step, workerModels } from "./reload-plan.js";
import { PIPELINE_DEPTH, runOn, type StartedThreads, type Threads } from "./threads.js";

/** The threads a model runs on (its own, or the set it shares), and what they loaded it as. */
export interface ModelThreads {
  readonly piscina: Threads;
  readonly threads: number;
  /** Its set: the model's name for threads of its own, {@link SHARED} for the shared set. */
  readonly key: string;
  readonly report: ModelLoadReport;
}

/** What serves: the models, the catalog, and each served model's threads. */
export interface Serving extends ServingSet {
  readonly threadsOf: ReadonlyMap<string, ModelThreads>;
}

/** The key of the thread set models without an `instance_count` share. */
export const SHARED = "";

/** Threads that started for a set, with how many. */
export type StartedSet = StartedThreads & { readonly threads: number };

/**
 * The thread set a step's model is served by: its own (its name) when its config sets
 * `instance_count`, else the shared one; undefined for a model no thread loads.
 */
export function groupOf(step: Step): string | undefined {
  if (step.kind === "untried") return undefined;
  if (step.kind === "try" && workerModels([step]).length === 0) return undefined;
  const entry = step.kind === "keep" ? step.served.entry : step.entry;
  return entry.instanceCount === undefined ? SHARED : entry.name;
}

/** Threads of a model's own set: its `instance_count`. */
export function instancesOf(step: Step): number {
  const entry =
    step.kind === "keep" ? step.served.entry : step.kind === "try" ? step.entry : undefined;
  return entry?.instanceCount ?? 1;
}

/**
 * The threads of each model: those of its set where that set started anew and loaded it, else
 * the ones that served it before.
 */
export function servingThreads(
  steps: readonly Step[],
  started: ReadonlyMap<string, StartedSet>,
  previous: Serving | undefined,
): Map<string, ModelThreads> {
  const out = new Map<string, ModelThreads>();
  for (const step of steps) {
    const name = nameOf(step);
    const key = groupOf(step);
    const fresh = key === undefined ? undefined : started.get(key);
    const report = fresh?.reports.find((r) => r.name === name);
    const before = previous?.threadsOf.get(name);
    if (fresh !== undefined && key !== undefined && report?.ok === true)
      out.set(name, { piscina: fresh.piscina, threads: fresh.threads, key, report });
    else if (before !== undefined && (step.kind === "keep" || report === undefined))
      out.set(name, before);
  }
  return out;
}

/** Threads of every set serving in `threadsOf` (a set counted once); `none` while none serves. */
export function threadsInSets(
  threadsOf: ReadonlyMap<string, ModelThreads> | undefined,
  none: number,
): number {
  const sets = new Map<string, number>();
  for (const t of threadsOf?.values() ?? []) sets.set(t.key, t.threads);
  return sets.size === 0 ? none : [...sets.values()].reduce((a, b) => a + b, 0);
}

/** Model batches on given models' threads (the warm-up of new ones). */
export class ThreadsPool implements InferencePool {
  readonly pipelineDepth = PIPELINE_DEPTH;

  constructor(
    private readonly threadsOf: ReadonlyMap<string, ModelThreads>,
    readonly threads: number,
    readonly onlineThreads: number,
  ) {}

  laneOf(model: string): Lane | undefined {
    const own = this.threadsOf.get(model);
    return own === undefined ? undefined : { key: own.key, threads: own.threads };
  }

  run(request: InferenceRequest, signal?: AbortSignal): Promise<InferenceResult> {
    const own = this.threadsOf.get(request.model);
    if (own === undefined)
      return Promise.reject(new ModelUnavailableError(request.model, "not loaded"));
    return runOn(own.piscina, request, signal);
  }

  async close(): Promise<void> {}
  async destroy(): Promise<void> {}
}

/** Whether the set `key` starts anew for `members` (their steps) or serves on as it is. */
export function restarts(
  key: string,
  members: readonly Step[],
  previous: Serving | undefined,
): boolean {
  if (members.some((step) => step.kind === "try")) return true;
  const held = [...(previous?.threadsOf ?? [])].filter(([, t]) => t.key === key);
  const set = held[0]?.[1].piscina;
  if (set === undefined || held.some(([, t]) => t.piscina !== set)) return true;
  const names = new Set(members.map(nameOf));
  return held.length !== names.size || held.some(([name]) => !names.has(name));
}

/**
 * The steps once the sets in `notStarted` (key: why) did not start: a tried model of such a set
 * keeps what served it before, or is unavailable with the reason; `startError` says why, by model.
 */
export function afterStartFailures(
  steps: readonly Step[],
  notStarted: ReadonlyMap<string, string>,
): { settled: Step[]; startError: Map<string, string> } {
  const startError = new Map<string, string>();
  const settled = steps.map((step): Step => {
    const key = groupOf(step);
    const reason = key === undefined ? undefined : notStarted.get(key);
    if (step.kind !== "try" || reason === undefined) return step;
    const name = step.entry.name;
    const problem = `the new inference threads did not start: ${reason}`;
    startError.set(name, problem);
    return step.previous !== undefined
      ? { kind: "keep", name, served: step.previous }
      : { ...step, version: undefined, problem };
  });
  return { settled, startError };
}
