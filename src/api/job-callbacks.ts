/**
 * A job's end announced to its `callback_url`: the job's view as GetJob answers it, POSTed as
 * JSON and signed with the job's secret (HMAC-SHA256 of `<timestamp>.<body>`, in
 * `x-batch-processor-signature: t=<timestamp>,v1=<hex>`), retried with backoff while the receiver
 * fails or does not answer, each attempt within a bounded time. A 2xx ends it; so does a 4xx
 * other than 408 and 429 (the receiver refused it, and will again).
 */
import { createHmac } from "node:crypto";
import { toJsonString } from "@bufbuild/protobuf";
import { JobSchema } from "../../gen/batchprocessor/v1/job_pb.js";
import type { EngineLogger, JobCallback, JobView } from "../engine/index.js";
import { jobOf } from "../service/index.js";
import { JSON_WRITE_OPTIONS } from "../wire/index.js";

/** Header of the signature. */
export const SIGNATURE_HEADER = "x-batch-processor-signature";

/** Options of {@link JobCallbacks}. */
export interface JobCallbacksOptions {
  readonly log: EngineLogger;
  /** Attempts in all. @defaultValue 6 */
  readonly attempts?: number;
  /** Longest one attempt may take, ms. @defaultValue 10000 */
  readonly timeoutMs?: number;
  /** Wait before the second attempt, ms; doubled before each next one. @defaultValue 1000 */
  readonly backoffMs?: number;
}

/** The signature of `body` sent at `timestamp` (epoch seconds) with `secret`. */
export function signCallback(secret: string, timestamp: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
  return `t=${timestamp},v1=${mac}`;
}

/** See the file comment. */
export class JobCallbacks {
  readonly #o: Required<JobCallbacksOptions>;
  readonly #sending = new Set<Promise<void>>();
  #closed = false;

  constructor(options: JobCallbacksOptions) {
    this.#o = { attempts: 6, timeoutMs: 10_000, backoffMs: 1000, ...options };
  }

  /** Sends the end of a job to its callback, in the background. */
  send(view: JobView, callback: JobCallback | null): void {
    if (callback === null || this.#closed) return;
    const sending = this.#deliver(view, callback).finally(() => this.#sending.delete(sending));
    this.#sending.add(sending);
  }

  /** Stops retrying; resolves once attempts under way have ended. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#sending]);
  }

  async #deliver(view: JobView, callback: JobCallback): Promise<void> {
    const body = toJsonString(JobSchema, jobOf(view), JSON_WRITE_OPTIONS);
    const { log, attempts, timeoutMs, backoffMs } = this.#o;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const headers: Record<string, string> = {
        "content-type": "application/json",
        "user-agent": "batch-processor",
      };
      if (callback.secret !== null)
        headers[SIGNATURE_HEADER] = signCallback(
          callback.secret,
          Math.floor(Date.now() / 1000),
          body,
        );
      let outcome: string;
      try {
        const response = await fetch(callback.url, {
          method: "POST",
          headers,
          body,
          redirect: "manual",
          signal: AbortSignal.timeout(timeoutMs),
        });
        await response.body?.cancel();
        if (response.ok) return;
        outcome = `HTTP ${response.status}`;
        if (response.status < 500 && response.status !== 408 && response.status !== 429) {
          log.warn({ jobId: view.jobId, outcome }, "a job's callback was refused");
          return;
        }
      } catch (error) {
        outcome = error instanceof Error ? error.message : String(error);
      }
      if (attempt === attempts || this.#closed) {
        log.warn({ jobId: view.jobId, outcome, attempts: attempt }, "a job's callback failed");
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, backoffMs * 2 ** (attempt - 1)));
    }
  }
}
