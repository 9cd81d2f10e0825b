/**
 * The typed client: a thin layer over the generated Connect client for other projects (the
 * `@batch-processor/client` package, and the server package's `batch-processor/client` export)
 * and the CLI, over any Connect transport: `index.ts` builds one for Node from a URL (`http(s)://`
 * Connect, `grpc(s)://` gRPC), `web.ts` one for browsers (Connect over fetch). Calls refused as UNAVAILABLE or RESOURCE_EXHAUSTED are retried after the server's
 * `retry-after` hint (or a growing pause without one); a submit carries a batch id the client
 * made unless the caller gave one, so that a retried submit can never store a second batch.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type CallOptions,
  type Client,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  type Analytics,
  type BatchConfig,
  BatchProcessorService,
  type BatchResults,
  type BatchStatus,
  type ConfigureRequestSchema,
  type ListBatchesResponse,
  type Metrics,
  type ModelInfo,
  type ReloadModelsResponse,
  type SubmitBatchRequestSchema,
  type SubmitBatchResponse,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import type {
  CreateJobRequestSchema,
  Job,
  JobItemSchema,
  JobResult,
  JobSpecSchema,
  ListJobsResponse,
} from "../../gen/batchprocessor/v1/job_pb.js";
import { isJobEnded, isTerminal } from "./states.js";

/** A submit or infer request, as the generated message's init shape. */
export type SubmitInput = MessageInitShape<typeof SubmitBatchRequestSchema>;
/** A configuration change. */
export type ConfigureInput = MessageInitShape<typeof ConfigureRequestSchema>;

/** A job's spec, as the generated message's init shape. */
export type JobSpecInput = MessageInitShape<typeof JobSpecSchema>;
/** One item of a job, as the generated message's init shape. */
export type JobItemInput = MessageInitShape<typeof JobItemSchema>;
/** A part of a job's upload: raw JSONL bytes (split anywhere), or items already parsed. */
export type JobPart = { readonly lines: Uint8Array } | { readonly items: readonly JobItemInput[] };

/** Options of {@link BatchProcessorClient}. */
export interface ClientOptions {
  /** `http(s)://host:port` (Connect) or `grpc(s)://host:port` (gRPC). */
  readonly url?: string;
  /** Sent as `X-API-Key`. */
  readonly apiKey?: string;
  /**
   * Sent with every call, e.g. a W3C `traceparent` (and `tracestate`) to make the server's spans
   * part of the caller's trace. (Per call, `CallOptions.headers` does the same.)
   */
  readonly headers?: Readonly<Record<string, string>>;
  /** Times a call refused as UNAVAILABLE or RESOURCE_EXHAUSTED is tried again. @defaultValue 5 */
  readonly retries?: number;
  /** Longest pause before a retry, ms (caps the server's hint too). @defaultValue 30000 */
  readonly maxRetryDelayMs?: number;
  /** A transport of the caller's own (then `url` and `apiKey` are not used). */
  readonly transport?: Transport;
}

/** Codes that mean "not now": the same call may succeed later. */
const RETRYABLE: ReadonlySet<Code> = new Set([Code.Unavailable, Code.ResourceExhausted]);

/** Pause before the first retry when the server gives no hint, ms; doubles each time. */
const FIRST_RETRY_MS = 250;

/** See the file comment. */
export class BatchProcessorClient {
  readonly #client: Client<typeof BatchProcessorService>;
  readonly #retries: number;
  readonly #maxDelayMs: number;

  /** Over `options.transport`; the package's entries build one from `url` (Node or browser). */
  constructor(options: ClientOptions & { readonly transport: Transport }) {
    this.#client = createClient(BatchProcessorService, options.transport);
    this.#retries = options.retries ?? 5;
    this.#maxDelayMs = options.maxRetryDelayMs ?? 30_000;
  }

  /** Stores a batch and answers at once (see the file comment for its id). */
  submit(request: SubmitInput, options?: CallOptions): Promise<SubmitBatchResponse> {
    const withId = {
      ...request,
      batchId: request.batchId || `batch_${globalThis.crypto.randomUUID()}`,
    };
    return this.#retrying(() => this.#client.submitBatch(withId, options), options);
  }

  /** Runs items synchronously and answers with their results. */
  infer(request: SubmitInput, options?: CallOptions): Promise<BatchResults> {
    return this.#retrying(() => this.#client.infer(request, options), options);
  }

  status(batchId: string, options?: CallOptions): Promise<BatchStatus> {
    return this.#retrying(() => this.#client.getBatchStatus({ batchId }, options), options);
  }

  /** A batch's results; with `partial`, those finished so far of a batch still running. */
  results(
    batchId: string,
    query: { partial?: boolean } = {},
    options?: CallOptions,
  ): Promise<BatchResults> {
    return this.#retrying(
      () => this.#client.getBatchResults({ batchId, partial: query.partial ?? false }, options),
      options,
    );
  }

  list(
    query: { status?: string; limit?: number; pageToken?: string } = {},
    options?: CallOptions,
  ): Promise<ListBatchesResponse> {
    return this.#retrying(() => this.#client.listBatches(query, options), options);
  }

  cancel(batchId: string, options?: CallOptions): Promise<BatchStatus> {
    return this.#retrying(() => this.#client.cancelBatch({ batchId }, options), options);
  }

  async models(options?: CallOptions): Promise<ModelInfo[]> {
    return (await this.#retrying(() => this.#client.listModels({}, options), options)).models;
  }

  /** Reloads the server's model repository (admin keys); see the ReloadModels RPC. */
  reloadModels(options?: CallOptions): Promise<ReloadModelsResponse> {
    return this.#retrying(() => this.#client.reloadModels({}, options), options);
  }

  config(options?: CallOptions): Promise<BatchConfig> {
    return this.#retrying(() => this.#client.getConfig({}, options), options);
  }

  configure(change: ConfigureInput, options?: CallOptions): Promise<BatchConfig> {
    return this.#retrying(() => this.#client.configure(change, options), options);
  }

  metrics(options?: CallOptions): Promise<Metrics> {
    return this.#retrying(() => this.#client.getMetrics({}, options), options);
  }

  analytics(period = "1h", metrics: string[] = [], options?: CallOptions): Promise<Analytics> {
    return this.#retrying(() => this.#client.getAnalytics({ period, metrics }, options), options);
  }

  /**
   * A batch's status as the server streams it, each change, ending after the terminal one. A
   * stream the server or the network breaks (UNAVAILABLE) is opened again; the first status of
   * the new stream repeats where the batch stands.
   */
  async *watch(batchId: string, options?: CallOptions): AsyncGenerator<BatchStatus> {
    let failures = 0;
    for (;;) {
      try {
        for await (const status of this.#client.watchBatch({ batchId }, options)) {
          failures = 0;
          yield status;
          if (isTerminal(status.status)) return;
        }
        // The stream ended before a terminal status (the node went away): open it again.
      } catch (error) {
        const connectError = ConnectError.from(error);
        if (connectError.code !== Code.Unavailable || failures >= this.#retries) throw error;
        await pause(this.#delayMs(connectError, failures), options?.signal);
        failures++;
      }
    }
  }

  /**
   * Submits a batch and waits until it ends, telling `onStatus` each change; answers its
   * results (of every item, failed ones included).
   */
  async submitAndWait(
    request: SubmitInput,
    options: CallOptions & { onStatus?: (status: BatchStatus) => void } = {},
  ): Promise<BatchResults> {
    const { batchId } = await this.submit(request, options);
    for await (const status of this.watch(batchId, options)) options.onStatus?.(status);
    return this.results(batchId, {}, options);
  }

  /**
   * Creates a job from `parts` (sent as they come) and answers once the server has stored every
   * line. Not retried: the parts are read once. Give `spec.jobId` to make a re-upload of the
   * same data the same job.
   */
  createJob(
    spec: JobSpecInput,
    parts: AsyncIterable<JobPart>,
    options?: CallOptions,
  ): Promise<Job> {
    async function* messages(): AsyncIterable<MessageInitShape<typeof CreateJobRequestSchema>> {
      yield { part: { case: "spec", value: spec } };
      for await (const part of parts)
        yield "lines" in part
          ? { part: { case: "lines", value: { data: part.lines } } }
          : { part: { case: "items", value: { items: [...part.items] } } };
    }
    return this.#client.createJob(messages(), options);
  }

  job(jobId: string, options?: CallOptions): Promise<Job> {
    return this.#retrying(() => this.#client.getJob({ jobId }, options), options);
  }

  jobs(
    query: { status?: string; limit?: number; pageToken?: string } = {},
    options?: CallOptions,
  ): Promise<ListJobsResponse> {
    return this.#retrying(() => this.#client.listJobs(query, options), options);
  }

  cancelJob(jobId: string, options?: CallOptions): Promise<Job> {
    return this.#retrying(() => this.#client.cancelJob({ jobId }, options), options);
  }

  /** A job's status as the server streams it, reopened like {@link watch}, until it ends. */
  async *watchJob(jobId: string, options?: CallOptions): AsyncGenerator<Job> {
    let failures = 0;
    for (;;) {
      try {
        for await (const job of this.#client.watchJob({ jobId }, options)) {
          failures = 0;
          yield job;
          if (isJobEnded(job.status)) return;
        }
      } catch (error) {
        const connectError = ConnectError.from(error);
        if (connectError.code !== Code.Unavailable || failures >= this.#retries) throw error;
        await pause(this.#delayMs(connectError, failures), options?.signal);
        failures++;
      }
    }
  }

  /**
   * A job's line outcomes in input order from `fromLine` (while it runs, those finished so far);
   * a broken stream goes on after the last line it gave.
   */
  async *jobResults(jobId: string, fromLine = 1, options?: CallOptions): AsyncGenerator<JobResult> {
    let next = fromLine;
    let failures = 0;
    for (;;) {
      try {
        for await (const result of this.#client.getJobResults({ jobId, fromLine: next }, options)) {
          failures = 0;
          next = result.line + 1;
          yield result;
        }
        return;
      } catch (error) {
        const connectError = ConnectError.from(error);
        if (!RETRYABLE.has(connectError.code) || failures >= this.#retries) throw error;
        await pause(this.#delayMs(connectError, failures), options?.signal);
        failures++;
      }
    }
  }

  async #retrying<T>(call: () => Promise<T>, options: CallOptions | undefined): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        const connectError = ConnectError.from(error);
        if (!RETRYABLE.has(connectError.code) || attempt >= this.#retries) throw connectError;
        await pause(this.#delayMs(connectError, attempt), options?.signal);
      }
    }
  }

  /** The server's `retry-after` (seconds), else a doubling pause with jitter; capped. */
  #delayMs(error: ConnectError, attempt: number): number {
    const hint = Number(error.metadata.get("retry-after"));
    const ms =
      Number.isFinite(hint) && hint > 0
        ? hint * 1000
        : FIRST_RETRY_MS * 2 ** attempt * (0.5 + Math.random() / 2);
    return Math.min(this.#maxDelayMs, ms);
  }
}

/** Interceptors that send `apiKey` as `X-API-Key` on every call (none without a key). */
/** Interceptors that send the key (as `X-API-Key`) and `headers` with every call. */
export function headerInterceptors(
  apiKey: string | undefined,
  headers: Readonly<Record<string, string>> = {},
): Interceptor[] {
  const all = {
    ...headers,
    ...(apiKey === undefined || apiKey === "" ? {} : { "x-api-key": apiKey }),
  };
  if (Object.keys(all).length === 0) return [];
  return [
    (next) => (request) => {
      for (const [name, value] of Object.entries(all)) request.header.set(name, value);
      return next(request);
    },
  ];
}

/** `url` parsed, or an error naming the schemes a client takes. */
export function parsedUrl(url: string | undefined, schemes: string): URL {
  try {
    return new URL(url ?? "");
  } catch {
    throw new Error(`not a URL: ${JSON.stringify(url)} (expected ${schemes})`);
  }
}

/** Resolves after `ms`, or rejects when `signal` aborts first. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
