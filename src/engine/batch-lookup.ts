/**
 * Finding a caller's batches: one by its id, live in this process or stored (where placement says
 * what it is now), and the caller's page of them, newest first. A key sees its own batches; an
 * admin sees every key's. The facade's reads, cancel and watch go through it.
 */
import { BatchNotFoundError, InvalidInputError } from "./errors.js";
import type { BatchRecord, JobStore } from "./job-store.js";
import { type JobRunner, viewOfRecord, viewWithLiveFacts } from "./jobs/index.js";
import type { Placement } from "./placement/index.js";
import type { BatchView, Principal } from "./types.js";
import { type ListOptions, validateBatchId, validateListFilter } from "./validation.js";

/** What {@link BatchLookup} reads. */
export interface BatchLookupOptions {
  readonly store: JobStore;
  readonly runner: JobRunner;
  readonly placement: Placement;
  readonly clock: () => number;
  /** Throws when the store is closed (the processor shut down). */
  readonly assertStoreOpen: () => void;
}

/** See the file comment. */
export class BatchLookup {
  readonly #o: BatchLookupOptions;

  constructor(options: BatchLookupOptions) {
    this.#o = options;
  }

  /** The caller's batch, live or stored: its status and its store key. */
  async find(principal: Principal, id: string): Promise<{ view: BatchView; pk: number }> {
    const batchId = validateBatchId(id);
    const job = this.#o.runner.live(principal, batchId);
    if (job !== undefined)
      return { view: await this.#o.placement.liveView(job), pk: job.pk as number };
    const record = await this.record(principal, batchId);
    return { view: await this.#o.placement.view(record), pk: record.pk };
  }

  /** The caller's stored batch `batchId` (already validated), or NOT_FOUND. */
  async record(principal: Principal, batchId: string): Promise<BatchRecord> {
    this.#o.assertStoreOpen();
    const own = await this.#o.store.findBatch(principal.owner, batchId);
    const record =
      own ?? (principal.admin ? await this.#o.store.findBatch(undefined, batchId) : undefined);
    if (record === undefined) throw new BatchNotFoundError(batchId);
    return record;
  }

  /** Batches visible to the caller, newest first. */
  async list(
    principal: Principal,
    options: ListOptions = {},
  ): Promise<{ batches: BatchView[]; nextPageToken: string | undefined }> {
    this.#o.assertStoreOpen();
    const { limit, statuses } = validateListFilter(options);
    const page = await this.#o.store
      .listBatches({
        owner: principal.admin ? undefined : principal.owner,
        statuses,
        limit,
        cursor: options.pageToken || undefined,
      })
      .catch((error: unknown) => {
        if (error instanceof RangeError)
          throw new InvalidInputError("page_token", "is not a token this server issued");
        throw error;
      });
    const now = this.#o.clock();
    const runner = this.#o.runner;
    // The records were just read: their status and counts stand, a live job adds its live facts.
    const batches = page.batches.map((record) => {
      const job = runner.liveOf(record);
      return job !== undefined
        ? viewWithLiveFacts(record, runner.view(job), now)
        : viewOfRecord(record, now);
    });
    return { batches, nextPageToken: page.nextCursor };
  }
}
