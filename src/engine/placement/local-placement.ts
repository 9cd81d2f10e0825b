/**
 * The placement of a node alone: every stored batch runs in this process, so a stored batch that
 * is not live here has ended, and there is no one to tell of a change.
 */
import { BatchEndedError } from "../errors.js";
import type { BatchRecord, StoredInput } from "../job-store.js";
import { type Job, receiptOf, viewOfRecord } from "../jobs/index.js";
import { admissionRefusal } from "../scheduling/index.js";
import type { BatchView, SubmitReceipt } from "../types.js";
import type { ValidSubmit } from "../validation.js";
import type { Activity, Placement, PlacementContext } from "./placement.js";

/** See the file comment. */
export class LocalPlacement implements Placement {
  readonly #c: PlacementContext;

  constructor(context: PlacementContext) {
    this.#c = context;
  }

  /** Runs again what a previous process left queued or processing. */
  async start(): Promise<void> {
    const unfinished = await this.#c.store.loadUnfinished();
    for (const batch of unfinished) this.#c.runner.adopt(batch);
    if (unfinished.length > 0)
      this.#c.log.info({ batches: unfinished.length }, "re-queued unfinished batches");
  }

  async admissionRefusal(valid: ValidSubmit): Promise<Error | undefined> {
    return admissionRefusal(valid, true, this.#c.admission());
  }

  async enqueue(record: BatchRecord, inputs: readonly StoredInput[]): Promise<SubmitReceipt> {
    const { runner, log } = this.#c;
    const job = runner.start(record, inputs);
    log.debug(
      { batchId: job.batchId, items: job.total, priority: job.priority, model: job.modelId },
      "batch queued",
    );
    return receiptOf(runner.view(job));
  }

  async view(record: BatchRecord): Promise<BatchView> {
    return viewOfRecord(record, this.#c.clock());
  }

  async liveView(job: Job): Promise<BatchView> {
    return this.#c.runner.view(job);
  }

  async *watch(record: BatchRecord): AsyncGenerator<BatchView> {
    yield viewOfRecord(record, this.#c.clock());
  }

  /** Only a batch that has just ended is stored as unended and not live here. */
  async cancel(record: BatchRecord): Promise<BatchView> {
    throw new BatchEndedError(record.batchId, record.status);
  }

  async configured(): Promise<void> {}

  async activity(): Promise<Activity> {
    const { activeStored, queue } = this.#c.admission();
    return { activeBatches: activeStored, pendingItems: queue.pending };
  }

  unavailable(): string | undefined {
    return undefined;
  }

  async stopTaking(): Promise<void> {}

  async leave(): Promise<void> {}
}
