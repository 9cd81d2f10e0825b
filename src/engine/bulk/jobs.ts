/**
 * Jobs as callers see them: create one from an upload, read, list, cancel, watch and download its
 * results. An upload is validated line by line and stored a chunk at a time, and the job exists
 * for readers (as `validating`) from its first line on; it is acknowledged once every line is
 * stored, and an upload that does not finish leaves nothing behind.
 */
import { randomUUID } from "node:crypto";
import {
  JobEndedError,
  JobExistsError,
  JobNotFoundError,
  JobsUnavailableError,
} from "../errors.js";
import type { ModelCatalog } from "../inference-pool.js";
import { topLabel } from "../jobs/index.js";
import type { EngineLogger } from "../logger.js";
import type { Principal } from "../types.js";
import { type ListOptions, validateListFilter } from "../validation.js";
import type { ChunkRunner } from "./chunk-run.js";
import { ClusterJobFeeder } from "./cluster-feeder.js";
import type { JobCluster } from "./job-cluster.js";
import type { JobData } from "./job-data.js";
import type { JobExecution } from "./job-execution.js";
import { JOB_FAILURES } from "./job-failures.js";
import { JobFeeder, type JobFeederOptions } from "./job-feeder.js";
import { type ValidJobSpec, validateJobSpec } from "./job-spec.js";
import {
  isJobEnded,
  isValidLine,
  JOB_STATUSES,
  type JobRecord,
  type JobRequest,
  type JobStatus,
  type JobView,
  type LineOutcome,
  type RawLine,
} from "./job-types.js";
import { readUpload } from "./job-upload.js";

/** Chunks a cluster node runs at once (each a thousand or so items in its batcher). */
const CLUSTER_CHUNKS_PER_NODE = 3;

/** Most status events a watcher gets per second. */
const WATCH_INTERVAL_MS = 250;
/** How often a watcher of a job running elsewhere (or uploading) reads it again, ms. */
const WATCH_POLL_MS = 1000;

/** One line of a results download. */
export interface JobResultLine extends LineOutcome {
  /** The top class when the model names its outputs; empty otherwise. */
  readonly label: string;
}

/** Options of {@link Jobs}. */
export interface JobsOptions extends Omit<JobFeederOptions, "data" | "runner"> {
  /** The store of jobs; undefined where this deployment runs none, for `unavailable`'s reason. */
  readonly data: JobData | undefined;
  readonly unavailable: string;
  readonly runner: ChunkRunner;
  /** The cluster this node belongs to, if any: its chunks then run on whichever node takes them. */
  readonly cluster?: JobCluster | undefined;
  readonly models: ModelCatalog;
  readonly defaultModel: string;
  /** Most lines in one job. */
  readonly maxLines: number;
  readonly log: EngineLogger;
}

/** See the file comment. */
export class Jobs {
  readonly #o: JobsOptions;
  readonly #feeder: JobExecution | undefined;

  constructor(options: JobsOptions) {
    this.#o = options;
    const data = options.data;
    this.#feeder =
      data === undefined
        ? undefined
        : options.cluster === undefined
          ? new JobFeeder({ ...options, data })
          : new ClusterJobFeeder({
              ...options,
              data,
              cluster: options.cluster,
              concurrency: CLUSTER_CHUNKS_PER_NODE,
              viewOf: (record) => this.#storedView(record),
            });
  }

  /** Jobs running in this process. */
  get running(): number {
    return this.#feeder?.running ?? 0;
  }

  /** Picks up the jobs a process that stopped left queued or running. */
  async recover(): Promise<void> {
    await this.#feeder?.recover();
  }

  /** Stops running jobs (see {@link JobExecution.close}). */
  async close(): Promise<void> {
    await this.#feeder?.close();
  }

  /**
   * Lines of unfinished jobs without an outcome, over every node that shares the store (each
   * unfinished job's record read once: jobs are few and large).
   */
  async pendingLines(): Promise<number> {
    if (this.#o.data === undefined) return 0;
    let lines = 0;
    for (const job of await this.#o.data.loadUnfinishedJobs()) {
      const { total, completed, failed, invalid } = job.counts;
      lines += Math.max(0, total - completed - failed - invalid);
    }
    return lines;
  }

  /** Deletes at most `limit` jobs (or slices of one) kept long enough at `now`; resolves how many. */
  async purge(now: number, defaultKeepMs: number, limit: number): Promise<number> {
    return this.#o.data === undefined ? 0 : this.#o.data.purgeJobs(now, defaultKeepMs, limit);
  }

  /**
   * Creates a job from `lines` (the upload, in parts) and resolves with its view once every line
   * is stored; a `job_id` that exists answers with that job when the upload is the same one.
   */
  async create(
    principal: Principal,
    request: JobRequest,
    lines: AsyncIterable<readonly RawLine[]>,
    signal?: AbortSignal,
  ): Promise<JobView> {
    const { data, feeder } = this.#parts();
    const spec = validateJobSpec(request, this.#o.models, this.#o.defaultModel);
    if (spec.jobId !== undefined) {
      const existing = await data.findJob(principal.owner, spec.jobId);
      if (existing !== undefined) return this.#again(existing, spec, lines, signal);
    }
    const now = this.#o.clock();
    const { created, record } = await data.createJob({
      owner: principal.owner,
      jobId: spec.jobId ?? `job_${randomUUID()}`,
      modelId: spec.model.name,
      priority: spec.priority,
      createdAt: now,
      expiresAt: now + spec.windowMs,
      callback: spec.callback,
      keepMs: spec.keepMs,
    });
    if (!created) return this.#again(record, spec, lines, signal);
    try {
      const sealed = await this.#store(data, record.pk, spec, lines, signal);
      if (sealed.counts.invalid > 0)
        this.#o.observer?.onJobLines?.(sealed.modelId, "invalid", sealed.counts.invalid);
      // Stored is acknowledged: a start that fails is picked up by the next start of a node.
      await feeder.run(sealed).catch((error: unknown) => {
        this.#o.log.error({ err: error, jobId: sealed.jobId }, "a job could not start");
      });
      // The answer is the job as stored: queued, whatever its first chunks have done since.
      return this.#storedView(sealed);
    } catch (error) {
      await data.dropJob(record.pk).catch((dropError: unknown) => {
        this.#o.log.error({ err: dropError, jobId: record.jobId }, "an unfinished upload was left");
      });
      throw error;
    }
  }

  /** The caller's job (an admin's: anyone's). */
  async get(principal: Principal, jobId: string): Promise<JobView> {
    return this.#view(await this.#find(principal, jobId));
  }

  /** A page of the caller's jobs (an admin's: everyone's), newest first. */
  async list(
    principal: Principal,
    options: ListOptions,
  ): Promise<{ jobs: JobView[]; nextPageToken: string | undefined }> {
    const { data } = this.#parts();
    const { limit, statuses } = validateListFilter<JobStatus>(options, JOB_STATUSES, [
      "validating",
      "queued",
      "running",
    ]);
    const page = await data.listJobs({
      owner: principal.admin ? undefined : principal.owner,
      statuses,
      limit,
      cursor: options.pageToken || undefined,
    });
    return { jobs: page.jobs.map((record) => this.#view(record)), nextPageToken: page.nextCursor };
  }

  /** Cancels a job: lines that ran keep their outcomes, the others end CANCELLED. */
  async cancel(principal: Principal, jobId: string): Promise<JobView> {
    const { feeder } = this.#parts();
    const record = await this.#find(principal, jobId);
    if (isJobEnded(record.status) || record.status === "validating")
      throw new JobEndedError(record.jobId, record.status);
    const view = await feeder.cancel(record.pk);
    if (view !== undefined) return view;
    // Not running here: ended meanwhile, or not started yet.
    return this.#view(await this.#find(principal, jobId));
  }

  /** The job's view now, then on every change (at most a few a second), until it has ended. */
  async *watch(principal: Principal, jobId: string, signal?: AbortSignal): AsyncIterable<JobView> {
    const { data, feeder } = this.#parts();
    const record = await this.#find(principal, jobId);
    let last = "";
    while (signal?.aborted !== true) {
      const view = feeder.view(record.pk) ?? this.#view((await data.getJob(record.pk)) ?? record);
      const key = JSON.stringify(view);
      if (key !== last) {
        last = key;
        yield view;
      }
      if (isJobEnded(view.status)) return;
      await changeOf(feeder, record.pk, signal);
    }
  }

  /**
   * The job's line outcomes in input order from `fromLine`, a chunk in memory at a time. While
   * the job runs, the lines finished so far in order; lines a job that ended never ran read as
   * the job ended.
   */
  async *results(
    principal: Principal,
    jobId: string,
    fromLine: number,
    signal?: AbortSignal,
  ): AsyncIterable<JobResultLine> {
    const { data } = this.#parts();
    const record = await this.#find(principal, jobId);
    const labels = this.#o.models.get(record.modelId)?.labels;
    const starts = await data.chunkStarts(record.pk);
    let chunk = 0;
    while (chunk + 1 < starts.length && (starts[chunk + 1] as number) <= fromLine) chunk++;
    for (; chunk < starts.length; chunk++) {
      signal?.throwIfAborted();
      const outcomes =
        (await data.chunkOutcomes(record.pk, chunk)) ?? (await this.#unrun(record.pk, chunk));
      if (outcomes === undefined) return;
      for (const outcome of outcomes)
        if (outcome.line >= fromLine)
          yield {
            ...outcome,
            label: outcome.output === null ? "" : topLabel(outcome.output, labels),
          };
    }
  }

  /** The outcomes of a chunk that never ran, when its job has ended; undefined while it runs. */
  async #unrun(pk: number, chunk: number): Promise<LineOutcome[] | undefined> {
    const { data, feeder } = this.#parts();
    const status = feeder.view(pk)?.status ?? (await data.getJob(pk))?.status;
    if (status === undefined || !isJobEnded(status)) return undefined;
    // A chunk may have been written since it was read.
    const written = await data.chunkOutcomes(pk, chunk);
    if (written !== undefined) return written;
    const error =
      status === "cancelled"
        ? JOB_FAILURES.cancelledLine
        : status === "expired"
          ? JOB_FAILURES.expiredLine
          : JOB_FAILURES.failedLine;
    return (await data.chunkLines(pk, chunk)).map((line) => ({
      line: line.line,
      id: line.id,
      output: null,
      confidence: 0,
      error: isValidLine(line) ? error : line.error,
    }));
  }

  /** Stores an upload's lines a chunk at a time and seals the job. */
  async #store(
    data: JobData,
    pk: number,
    spec: ValidJobSpec,
    lines: AsyncIterable<readonly RawLine[]>,
    signal: AbortSignal | undefined,
  ): Promise<JobRecord> {
    const read = await readUpload(spec, lines, this.#o.maxLines, signal, (chunk, full) =>
      data.addChunk(pk, chunk, full),
    );
    return data.sealJob(pk, {
      total: read.lines,
      invalid: read.invalid,
      chunks: read.chunks,
      payloadHash: read.digest,
    });
  }

  /** A create with a `job_id` that exists: the same job when the upload is the same. */
  async #again(
    existing: JobRecord,
    spec: ValidJobSpec,
    lines: AsyncIterable<readonly RawLine[]>,
    signal: AbortSignal | undefined,
  ): Promise<JobView> {
    const read = await readUpload(spec, lines, this.#o.maxLines, signal, async () => {});
    if (existing.payloadHash === null || existing.payloadHash !== read.digest)
      throw new JobExistsError(existing.jobId);
    return this.get({ owner: existing.owner, admin: false }, existing.jobId);
  }

  async #find(principal: Principal, jobId: string): Promise<JobRecord> {
    const { data } = this.#parts();
    const record = await data.findJob(principal.admin ? undefined : principal.owner, jobId);
    // An admin's own job comes first when several owners chose the same id.
    const own =
      principal.admin && record !== undefined && record.owner !== principal.owner
        ? ((await data.findJob(principal.owner, jobId)) ?? record)
        : record;
    if (own === undefined) throw new JobNotFoundError(jobId);
    return own;
  }

  #view(record: JobRecord): JobView {
    return this.#feeder?.view(record.pk) ?? this.#storedView(record);
  }

  #storedView(record: JobRecord): JobView {
    const { counts } = record;
    const finished = counts.completed + counts.failed + counts.invalid;
    // Read from the store (another node runs it): the pace since it started.
    const ran = counts.completed + counts.failed;
    const now = this.#o.clock();
    const rate =
      record.status === "running" && record.startedAt !== null && now > record.startedAt
        ? (ran * 1000) / (now - record.startedAt)
        : 0;
    return {
      jobId: record.jobId,
      status: record.status,
      modelId: record.modelId,
      priority: record.priority,
      createdAt: record.createdAt,
      startedAt: record.startedAt,
      completedAt: record.completedAt,
      expiresAt: record.expiresAt,
      counts,
      progress: counts.total === 0 ? 0 : finished / counts.total,
      itemsPerSecond: rate,
      estimatedCompletionTime:
        record.completedAt ?? (rate > 0 ? now + ((counts.total - finished) * 1000) / rate : null),
      error: record.error,
    };
  }

  #parts(): { data: JobData; feeder: JobExecution } {
    if (this.#o.data === undefined || this.#feeder === undefined)
      throw new JobsUnavailableError(this.#o.unavailable);
    return { data: this.#o.data, feeder: this.#feeder };
  }
}

/** Resolves at the job's next change (no sooner than the watch interval), or after a poll. */
async function changeOf(feeder: JobExecution, pk: number, signal?: AbortSignal): Promise<void> {
  const started = Date.now();
  await new Promise<void>((resolve) => {
    let unsubscribe: (() => void) | undefined;
    const done = () => {
      clearTimeout(timer);
      unsubscribe?.();
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, WATCH_POLL_MS);
    unsubscribe = feeder.subscribe(pk, done);
    signal?.addEventListener("abort", done, { once: true });
  });
  const waited = Date.now() - started;
  if (waited < WATCH_INTERVAL_MS && signal?.aborted !== true)
    await new Promise((resolve) => setTimeout(resolve, WATCH_INTERVAL_MS - waited));
}
