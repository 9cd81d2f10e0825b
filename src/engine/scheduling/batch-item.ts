/** What the batcher runs, and which queue each item waits in. */
import { type PaddingPlan, shapeKey } from "../padding.js";
import type { ItemTensor } from "../tensors.js";
import type { SchedulableItem } from "./priority-scheduler.js";

/** An item the batcher can run. */
export interface BatchItem extends SchedulableItem {
  readonly model: string;
  /** {@link queueKey} of the item, computed once when it is created. */
  readonly queue: string;
  /**
   * The item's tensors, in the model's input order; copied into the model batch's tensors at
   * dispatch. Items whose tensors differ in shape never share a model batch.
   */
  readonly inputs: readonly ItemTensor[];
  /** Whether the item's caller wants every output by name, not only the primary one. */
  readonly named: boolean;
  /** How its model pads variable-length inputs; undefined when it pads none. */
  readonly padding?: PaddingPlan | undefined;
}

/**
 * The queue of an item: its model and its tensors' names, datatypes and shapes (the axes its
 * model pads left out, so items that differ only there share model batches).
 */
export function queueKey(
  item: { readonly model: string; readonly inputs: readonly ItemTensor[] },
  padding?: PaddingPlan,
): string {
  let key = item.model;
  for (const t of item.inputs) key += `|${t.name}:${t.datatype}:${shapeKey(t, padding)}`;
  return key;
}
