/**
 * The engine's periodic chores: saving the end of jobs whose writes failed (see
 * `job-journal.ts`), and deleting ended batches older than the result TTL, a chunk per store
 * call with the event loop free in between, so a large backlog of expired batches never blocks
 * requests.
 */
import type { JobStore } from "../job-store.js";
import type { EngineLogger } from "../logger.js";

/** Batches one purge call deletes at most. */
const PURGE_CHUNK = 500;

/** Options of {@link Housekeeping}. */
export interface HousekeepingOptions {
  readonly store: Pick<JobStore, "purgeFinished">;
  /** Saves the failures of jobs whose writes failed. */
  readonly retryUnrecorded: () => Promise<void>;
  /** How long ended batches are kept, ms. */
  readonly resultTtlMs: number;
  /** How often the chores run, ms. */
  readonly intervalMs: number;
  readonly clock: () => number;
  readonly log: EngineLogger;
}

/** See the file comment. */
export class Housekeeping {
  readonly #o: HousekeepingOptions;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: HousekeepingOptions) {
    this.#o = options;
  }

  /** Runs the chores every `intervalMs` until {@link stop}. */
  start(): void {
    this.#timer = setInterval(() => void this.run(), this.#o.intervalMs);
    this.#timer.unref();
  }

  /** No more chores; a purge under way stops after its current chunk. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  /** Runs the chores once; resolves how many expired batches were deleted. */
  async run(): Promise<number> {
    const { store, clock, resultTtlMs, log } = this.#o;
    await this.#o.retryUnrecorded();
    const before = clock() - resultTtlMs;
    let total = 0;
    try {
      while (!this.#stopped) {
        const deleted = await store.purgeFinished(before, PURGE_CHUNK);
        total += deleted;
        if (deleted < PURGE_CHUNK) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      log.error({ err: error }, "purging expired results failed");
    }
    return total;
  }
}
