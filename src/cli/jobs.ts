/**
 * `batch-processor jobs ...`: a data set as one job. `submit` streams a JSONL file (or stdin) to
 * the server as it reads it, with a bar for the upload in bytes and then, with `--watch`, one for
 * the lines; `-o` writes results as they arrive, in input order. Ctrl-C leaves the job running
 * and prints the command that picks up watching and downloading where it stopped (`watch -o`
 * on an existing file goes on after its last line).
 */
import {
  closeSync,
  createReadStream,
  existsSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  statSync,
  writeSync,
} from "node:fs";
import { toJson, toJsonString } from "@bufbuild/protobuf";
import {
  type Job,
  JobResultSchema,
  JobSchema,
  type ListJobsResponse,
  ListJobsResponseSchema,
} from "../../gen/batchprocessor/v1/job_pb.js";
import type { BatchProcessorClient, JobPart, JobSpecInput } from "../client/index.js";
import { isJobEnded } from "../engine/index.js";
import { JSON_WRITE_OPTIONS, RESULT_LINE_JSON_OPTIONS } from "../wire/index.js";
import { RunProgress } from "./progress.js";
import { UsageError } from "./usage.js";

/** Bytes per message of an upload. */
const UPLOAD_PIECE_BYTES = 256 * 1024;
/** Least time between two result downloads while a job runs, ms. */
const DOWNLOAD_INTERVAL_MS = 1000;

/** What `jobs submit` and `jobs watch` were asked for. */
export interface JobRunOptions {
  readonly watch: boolean;
  readonly output: string | undefined;
}

/** Streams `file` (or stdin for `-`) as a job; with `watch`, follows it to its end. */
export async function submitJobFile(
  client: BatchProcessorClient,
  file: string,
  spec: JobSpecInput,
  o: JobRunOptions,
  interrupted: AbortSignal,
): Promise<number> {
  const size = file === "-" ? undefined : statSync(file).size;
  const stream =
    file === "-" ? process.stdin : createReadStream(file, { highWaterMark: UPLOAD_PIECE_BYTES });
  const bar =
    size !== undefined && process.stderr.isTTY === true
      ? new RunProgress(size, process.stderr, "upload", "bytes")
      : undefined;
  let sent = 0;
  async function* parts(): AsyncIterable<JobPart> {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (interrupted.aborted)
        throw new Error("interrupted before the upload ended: no job was created");
      sent += chunk.length;
      bar?.update(sent, 0);
      yield { lines: chunk };
    }
  }
  const job = await client.createJob(spec, parts(), { signal: interrupted });
  bar?.finish(`uploaded ${sent} bytes`);
  return afterCreate(client, job, o, interrupted);
}

/** Sends items already parsed as a job (a `submit` of more than one batch's worth). */
export async function submitJobItems(
  client: BatchProcessorClient,
  items: readonly JobPart[],
  spec: JobSpecInput,
  o: JobRunOptions,
  interrupted: AbortSignal,
): Promise<number> {
  async function* parts(): AsyncIterable<JobPart> {
    yield* items;
  }
  const job = await client.createJob(spec, parts(), { signal: interrupted });
  return afterCreate(client, job, o, interrupted);
}

async function afterCreate(
  client: BatchProcessorClient,
  job: Job,
  o: JobRunOptions,
  interrupted: AbortSignal,
): Promise<number> {
  if (!o.watch) {
    printJob(job);
    return 0;
  }
  process.stdout.write(
    `job ${job.jobId}: ${job.counts?.total ?? 0} lines stored (${job.counts?.invalid ?? 0} invalid)\n`,
  );
  return watchJob(client, job.jobId, o.output, interrupted);
}

/**
 * Follows a job to its end with a progress display; with `output`, writes its results as they
 * arrive (after the file's last line when it exists). 0 when every line has an output, 1
 * otherwise, 130 on Ctrl-C (the job keeps running).
 */
export async function watchJob(
  client: BatchProcessorClient,
  jobId: string,
  output: string | undefined,
  interrupted: AbortSignal,
): Promise<number> {
  const first = await client.job(jobId);
  const total = first.counts?.total ?? 0;
  const progress = new RunProgress(total, process.stdout, jobId);
  const writer = output === undefined ? undefined : new ResultsFile(output);
  const abort = new AbortController();
  const stop = () => abort.abort();
  interrupted.addEventListener("abort", stop, { once: true });
  let last: Job = first;
  let downloaded = 0;
  const show = (job: Job) => {
    const counts = job.counts;
    progress.update(
      (counts?.completed ?? 0) + (counts?.failed ?? 0) + (counts?.invalid ?? 0),
      (counts?.failed ?? 0) + (counts?.invalid ?? 0),
    );
  };
  try {
    show(first);
    if (!isJobEnded(first.status))
      for await (const job of client.watchJob(jobId, { signal: abort.signal })) {
        last = job;
        show(job);
        if (writer !== undefined && Date.now() - downloaded >= DOWNLOAD_INTERVAL_MS) {
          await writer.fetch(client, jobId, abort.signal);
          downloaded = Date.now();
        }
      }
    await writer?.fetch(client, jobId, abort.signal);
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  } finally {
    interrupted.removeEventListener("abort", stop);
    writer?.close();
  }
  if (abort.signal.aborted) {
    const resume = `batch-processor jobs watch ${jobId}${output === undefined ? "" : ` -o ${output}`}`;
    progress.finish(`interrupted: the job keeps running on the server; resume with: ${resume}`);
    return 130;
  }
  const counts = last.counts;
  progress.finish(
    `${last.status}: ${counts?.completed ?? 0} completed, ${counts?.failed ?? 0} failed, ${counts?.invalid ?? 0} invalid of ${total} lines${last.error === undefined ? "" : ` (${last.error})`}${writer === undefined ? "" : `; results in ${output}`}`,
  );
  // Success is every line with an output: a bad line or a failed one is the caller's to see.
  return last.status === "completed" && counts?.failed === 0 && counts.invalid === 0 ? 0 : 1;
}

/** Writes a job's results to `output` (or stdout) from `fromLine`. */
export async function writeJobResults(
  client: BatchProcessorClient,
  jobId: string,
  output: string | undefined,
  fromLine: number,
): Promise<void> {
  if (output === undefined) {
    for await (const result of client.jobResults(jobId, fromLine))
      process.stdout.write(`${toJsonString(JobResultSchema, result, RESULT_LINE_JSON_OPTIONS)}\n`);
    return;
  }
  const writer = new ResultsFile(output, fromLine);
  try {
    await writer.fetch(client, jobId);
  } finally {
    writer.close();
  }
  process.stderr.write(`wrote ${writer.written} results to ${output}\n`);
}

export function printJob(job: Job): void {
  process.stdout.write(`${JSON.stringify(toJson(JobSchema, job, JSON_WRITE_OPTIONS))}\n`);
}

export function printJobs(page: ListJobsResponse): void {
  process.stdout.write(
    `${JSON.stringify(toJson(ListJobsResponseSchema, page, JSON_WRITE_OPTIONS))}\n`,
  );
}

/**
 * A results file written in input order as lines arrive; an existing one goes on after its last
 * whole line (a torn last line is cut off first).
 */
class ResultsFile {
  readonly #fd: number;
  #next: number;
  /** Where the next line goes. */
  #offset = 0;
  written = 0;

  constructor(path: string, fromLine?: number) {
    const resume = fromLine === undefined && existsSync(path);
    this.#fd = openSync(path, resume ? "r+" : "w");
    this.#next = resume ? this.#afterLastLine() : (fromLine ?? 1);
  }

  /** Appends the lines finished since the last call. */
  async fetch(client: BatchProcessorClient, jobId: string, signal?: AbortSignal): Promise<void> {
    for await (const result of client.jobResults(jobId, this.#next, { signal })) {
      const line = Buffer.from(
        `${toJsonString(JobResultSchema, result, RESULT_LINE_JSON_OPTIONS)}\n`,
      );
      writeSync(this.#fd, line, 0, line.length, this.#offset);
      this.#offset += line.length;
      this.#next = result.line + 1;
      this.written++;
    }
  }

  close(): void {
    closeSync(this.#fd);
  }

  /** The line after the file's last whole line; the file is cut back to that line's end. */
  #afterLastLine(): number {
    const size = fstatSync(this.#fd).size;
    const tail = Buffer.alloc(Math.min(size, 1 << 20));
    readSync(this.#fd, tail, 0, tail.length, size - tail.length);
    const end = tail.lastIndexOf(10);
    // Writes go on at the end of the last whole line.
    this.#offset = end < 0 ? 0 : size - tail.length + end + 1;
    ftruncateSync(this.#fd, this.#offset);
    if (end < 0) return 1;
    const start = tail.lastIndexOf(10, end - 1) + 1;
    const line = (JSON.parse(tail.toString("utf8", start, end)) as { line?: unknown }).line;
    return typeof line === "number" ? line + 1 : 1;
  }
}

/** What `jobs <sub>` was asked for. */
export interface JobsOptions {
  readonly model: string;
  readonly priority: string;
  readonly completionWindow: string;
  readonly resultTtl: string;
  readonly jobId: string;
  readonly onInvalid: string;
  readonly watch: boolean;
  readonly output: string | undefined;
  readonly fromLine: number;
  readonly status: string | undefined;
  readonly limit: number | undefined;
}

/** `jobs <sub> ...`: see the file comment. */
export async function jobs(
  client: BatchProcessorClient,
  args: readonly string[],
  interrupted: AbortSignal,
  o: JobsOptions,
): Promise<number> {
  const [sub, id] = args;
  const needId = () => {
    if (id === undefined) throw new UsageError(`jobs ${sub} needs a job id`);
    return id;
  };
  switch (sub) {
    case "submit":
      if (id === undefined) throw new UsageError("jobs submit needs a file (or - for stdin)");
      if (o.output !== undefined && !o.watch)
        throw new UsageError("-o with jobs submit needs --watch (or use jobs results ID -o FILE)");
      return submitJobFile(
        client,
        id,
        {
          modelId: o.model,
          priority: o.priority,
          completionWindow: o.completionWindow,
          resultTtl: o.resultTtl,
          jobId: o.jobId,
          onInvalid: o.onInvalid,
        },
        { watch: o.watch, output: o.output },
        interrupted,
      );
    case "status":
      printJob(await client.job(needId()));
      return 0;
    case "watch":
      return watchJob(client, needId(), o.output, interrupted);
    case "results":
      await writeJobResults(client, needId(), o.output, o.fromLine);
      return 0;
    case "cancel":
      printJob(await client.cancelJob(needId()));
      return 0;
    case "list":
      printJobs(await client.jobs({ status: o.status, limit: o.limit }));
      return 0;
    default:
      throw new UsageError(
        `jobs needs one of submit, status, watch, results, cancel, list${sub === undefined ? "" : `, not ${JSON.stringify(sub)}`}`,
      );
  }
}
