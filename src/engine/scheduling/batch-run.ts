/**
 * One dispatched model batch on the pool, and what happens when the runtime refuses it: its
 * halves run on their own until the item it cannot take fails alone.
 */
import { ModelRunError } from "../errors.js";
import type { InferencePool, InferenceResult } from "../inference-pool.js";
import { batchTensor, type PaddingPlan } from "../padding.js";
import type { ItemTensor } from "../tensors.js";

/** How a dispatched model batch ended. */
export type BatchOutcome =
  | { readonly ok: true; readonly result: InferenceResult }
  | { readonly ok: false; readonly error: unknown };

/** What running an item in a model batch needs of it. */
interface RunnableItem {
  readonly model: string;
  readonly inputs: readonly ItemTensor[];
  readonly named: boolean;
  readonly padding?: PaddingPlan | undefined;
}

/**
 * Runs `items` as one model batch on `pool` (`urgent`: before the batches queued on its thread);
 * its outcome, never a rejection.
 */
export async function attemptBatch(
  pool: InferencePool,
  items: readonly RunnableItem[],
  urgent = false,
): Promise<BatchOutcome> {
  const first = items[0] as RunnableItem;
  try {
    const inputs = first.inputs.map((_, k) => batchTensor(items, k, first.padding));
    const named = items.some((item) => item.named);
    const result = await pool.run({ model: first.model, inputs, named, urgent });
    return { ok: true, result };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * Runs `items` by `attempt` and hands each part's outcome to `complete`. When the runtime refuses
 * a batch of several items, its halves run on their own, one after the other, down to the item
 * it cannot take: that item fails alone and the others get their outputs. Where both halves fail
 * too, the failure is the model's rather than an item's, and every item of both ends with it.
 */
export async function runIsolating<T>(
  items: readonly T[],
  attempt: (items: readonly T[]) => Promise<BatchOutcome>,
  complete: (items: readonly T[], outcome: BatchOutcome) => void,
): Promise<void> {
  const outcome = await attempt(items);
  if (outcome.ok || items.length === 1 || !(outcome.error instanceof ModelRunError))
    complete(items, outcome);
  else await isolate(items, attempt, complete);
}

async function isolate<T>(
  items: readonly T[],
  attempt: (items: readonly T[]) => Promise<BatchOutcome>,
  complete: (items: readonly T[], outcome: BatchOutcome) => void,
): Promise<void> {
  const half = Math.ceil(items.length / 2);
  const parts = [items.slice(0, half), items.slice(half)];
  const outcomes: BatchOutcome[] = [];
  for (const part of parts) outcomes.push(await attempt(part));
  const together = outcomes.every((o) => !o.ok);
  for (const [k, part] of parts.entries()) {
    const outcome = outcomes[k] as BatchOutcome;
    if (!together && !outcome.ok && part.length > 1 && outcome.error instanceof ModelRunError)
      await isolate(part, attempt, complete);
    else complete(part, outcome);
  }
}
