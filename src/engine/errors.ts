/**
 * The closed set of domain errors. Transports map `code` to a Connect/gRPC code and an HTTP status
 * in exactly one place; anything that is not a `DomainError` is an internal error whose message
 * never reaches a client.
 */

/** Stable, transport-neutral error codes (the gRPC canonical names). */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED"
  | "NOT_FOUND"
  | "FAILED_PRECONDITION"
  | "ALREADY_EXISTS"
  | "RESOURCE_EXHAUSTED"
  | "DEADLINE_EXCEEDED"
  | "UNAVAILABLE"
  | "CANCELLED"
  | "UNIMPLEMENTED";

/** Every {@link ErrorCode}, in one list (stores read codes back and check them against it). */
export const ERROR_CODES: readonly ErrorCode[] = [
  "INVALID_ARGUMENT",
  "UNAUTHENTICATED",
  "PERMISSION_DENIED",
  "NOT_FOUND",
  "FAILED_PRECONDITION",
  "ALREADY_EXISTS",
  "RESOURCE_EXHAUSTED",
  "DEADLINE_EXCEEDED",
  "UNAVAILABLE",
  "CANCELLED",
  "UNIMPLEMENTED",
];

/**
 * Codes an item or a batch can end with: the request codes, and INTERNAL for failures of the
 * server's own (a model run that crashed, a store write that failed).
 */
export type OutcomeCode = ErrorCode | "INTERNAL";

/** Every {@link OutcomeCode}. */
export const OUTCOME_CODES: readonly OutcomeCode[] = [...ERROR_CODES, "INTERNAL"];

/** Why an item has no output, or why a batch did not complete; the message is safe to show. */
export interface Failure {
  readonly code: OutcomeCode;
  readonly message: string;
}

/** A frozen {@link Failure}. */
export function failure(code: OutcomeCode, message: string): Failure {
  return Object.freeze({ code, message });
}

/**
 * The runtime refused or failed a model batch; `message` is its own words, cut to their first
 * line with no server paths, and is shown to the callers whose items were in the batch (an
 * INTERNAL outcome, since the request itself was admitted as valid).
 */
export class ModelRunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelRunError";
  }
}

/** Base class of every error whose message is safe to show to a client. */
export abstract class DomainError extends Error {
  abstract readonly code: ErrorCode;
  /** When set, a hint for `Retry-After`, ms: the same request may succeed after that long. */
  readonly retryAfterMs?: number;
}

/** Longest piece of a client's value that an error message or a log line repeats. */
export const ECHO_MAX_CHARS = 64;

/**
 * A client's value as messages quote it: JSON, cut to {@link ECHO_MAX_CHARS} characters, so a
 * megabyte-long id or string is never echoed back or logged whole.
 */
export function echo(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (value === undefined) return "nothing";
  if (typeof value === "string" && value.length > ECHO_MAX_CHARS)
    return `${JSON.stringify(value.slice(0, ECHO_MAX_CHARS))}… (${value.length} characters)`;
  let text: string;
  try {
    text = JSON.stringify(value) ?? typeof value;
  } catch {
    text = typeof value;
  }
  return text.length > ECHO_MAX_CHARS ? `${text.slice(0, ECHO_MAX_CHARS)}…` : text;
}

/** A request field breaks a rule; `field` is its wire name (`data[3].input`). */
export class InvalidInputError extends DomainError {
  readonly code = "INVALID_ARGUMENT";
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super(`${field}: ${rule}`);
    this.name = "InvalidInputError";
  }
}

/** No batch with this id is visible to the caller. */
export class BatchNotFoundError extends DomainError {
  readonly code = "NOT_FOUND";
  constructor(readonly batchId: string) {
    super(`batch ${echo(batchId)} not found`);
    this.name = "BatchNotFoundError";
  }
}

/** The model named in `metadata.model_id` does not exist. */
export class ModelNotFoundError extends DomainError {
  readonly code = "NOT_FOUND";
  constructor(
    readonly modelId: string,
    readonly available: readonly string[],
    field = "metadata.model_id",
  ) {
    super(
      `${field}: model ${echo(modelId)} not found; available models: ${
        available.length > 0 ? available.join(", ") : "(none)"
      }`,
    );
    this.name = "ModelNotFoundError";
  }
}

/** The model exists but could not be loaded. */
export class ModelUnavailableError extends DomainError {
  readonly code = "UNAVAILABLE";
  constructor(
    readonly modelId: string,
    readonly reason: string,
  ) {
    super(`model ${echo(modelId)} is unavailable: ${reason}`);
    this.name = "ModelUnavailableError";
  }
}

/** A model exists, but not in the version asked for. */
export class ModelVersionNotFoundError extends DomainError {
  readonly code = "NOT_FOUND";
  constructor(
    readonly modelId: string,
    readonly version: string,
    readonly serving: readonly string[],
    field: string,
  ) {
    super(
      `${field}: model ${echo(modelId)} has no version ${echo(version)}; it serves ${serving.length === 1 ? "version" : "versions"} ${serving.map(echo).join(", ")}`,
    );
    this.name = "ModelVersionNotFoundError";
  }
}

/**
 * A request that runs as one tensor failed because an item of it did: the item's code and
 * message (a protocol without per-item outcomes answers the first failure for the whole call).
 */
export class ItemFailedError extends DomainError {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ItemFailedError";
  }
}

/** Results were asked for before the batch reached a terminal state. */
export class ResultsNotReadyError extends DomainError {
  readonly code = "FAILED_PRECONDITION";
  constructor(
    readonly batchId: string,
    readonly status: string,
  ) {
    super(
      `batch ${echo(batchId)} is ${status}; results are available once it ends (or ask for partial results)`,
    );
    this.name = "ResultsNotReadyError";
  }
}

/** The batch has ended and can no longer change (e.g. cancel after completion). */
export class BatchEndedError extends DomainError {
  readonly code = "FAILED_PRECONDITION";
  constructor(
    readonly batchId: string,
    readonly status: string,
  ) {
    super(
      `batch ${echo(batchId)} has already ${status === "failed" ? "failed" : "completed"} and can no longer be cancelled`,
    );
    this.name = "BatchEndedError";
  }
}

/** A client `batch_id` was reused with a different payload. */
export class BatchExistsError extends DomainError {
  readonly code = "ALREADY_EXISTS";
  constructor(readonly batchId: string) {
    super(`batch_id: ${echo(batchId)} already exists with a different payload`);
    this.name = "BatchExistsError";
  }
}

/** Admission control rejected a submit; nothing of it was queued. */
export class QueueFullError extends DomainError {
  readonly code = "RESOURCE_EXHAUSTED";
  constructor(
    message: string,
    override readonly retryAfterMs: number,
  ) {
    super(message);
    this.name = "QueueFullError";
  }
}

/** The server sheds load: the request was refused before any work was done for it. */
export class OverloadedError extends DomainError {
  readonly code = "RESOURCE_EXHAUSTED";
  constructor(
    message: string,
    override readonly retryAfterMs: number,
  ) {
    super(message);
    this.name = "OverloadedError";
  }
}

/** A batch's deadline passed before its items could start. */
export class DeadlineExceededError extends DomainError {
  readonly code = "DEADLINE_EXCEEDED";
  constructor(message: string) {
    super(message);
    this.name = "DeadlineExceededError";
  }
}

/** The store cannot be reached (a shared store's connection is down); the same call may work soon. */
export class StoreUnavailableError extends DomainError {
  readonly code = "UNAVAILABLE";
  override readonly retryAfterMs = 1000;
  /** `cause`: the client error underneath, for the log. */
  constructor(cause?: unknown) {
    super("the job store is unavailable; retry shortly", { cause });
    this.name = "StoreUnavailableError";
  }
}

/** The server is draining and takes no new work. */
export class ShuttingDownError extends DomainError {
  readonly code = "UNAVAILABLE";
  constructor() {
    super("the server is shutting down and accepts no new work");
    this.name = "ShuttingDownError";
  }
}

/** No API key, or one the server does not know. */
export class UnauthenticatedError extends DomainError {
  readonly code = "UNAUTHENTICATED";
  constructor(
    message = "missing or unknown API key: send it as X-API-Key or authorization: Bearer <key>",
  ) {
    super(message);
    this.name = "UnauthenticatedError";
  }
}

/** The caller may not perform this operation. */
export class PermissionDeniedError extends DomainError {
  readonly code = "PERMISSION_DENIED";
  constructor(action: string, note?: string) {
    super(`this API key may not ${action}${note === undefined ? "" : ` (${note})`}`);
    this.name = "PermissionDeniedError";
  }
}

/** The caller went away (client cancel) before the work finished. */
export class CancelledError extends DomainError {
  readonly code = "CANCELLED";
  constructor(message = "the request was cancelled") {
    super(message);
    this.name = "CancelledError";
  }
}

/** No job with this id is visible to the caller. */
export class JobNotFoundError extends DomainError {
  readonly code = "NOT_FOUND";
  constructor(readonly jobId: string) {
    super(`job ${echo(jobId)} not found`);
    this.name = "JobNotFoundError";
  }
}

/** A client `job_id` was reused with a different upload. */
export class JobExistsError extends DomainError {
  readonly code = "ALREADY_EXISTS";
  constructor(readonly jobId: string) {
    super(`job_id: ${echo(jobId)} already exists with a different upload`);
    this.name = "JobExistsError";
  }
}

/** The job has ended (or is still uploading) and cannot be cancelled now. */
export class JobEndedError extends DomainError {
  readonly code = "FAILED_PRECONDITION";
  constructor(
    readonly jobId: string,
    readonly status: string,
  ) {
    super(
      status === "validating"
        ? `job ${echo(jobId)} is still being uploaded; it can be cancelled once it is stored`
        : `job ${echo(jobId)} has already ended (${status}) and can no longer be cancelled`,
    );
    this.name = "JobEndedError";
  }
}

/** This deployment does not run jobs (see the message for why). */
export class JobsUnavailableError extends DomainError {
  readonly code = "UNIMPLEMENTED";
  constructor(reason: string) {
    super(reason);
    this.name = "JobsUnavailableError";
  }
}

/** This server was started without the control of its model repository's models one by one. */
export class RepositoryControlUnavailableError extends DomainError {
  readonly code = "UNIMPLEMENTED";
  constructor() {
    super("this server does not load or unload models one at a time");
    this.name = "RepositoryControlUnavailableError";
  }
}

/** A state-machine violation: always a bug, never a client's fault, so not a DomainError. */
export class IllegalTransitionError extends Error {
  constructor(
    readonly from: string,
    readonly to: string,
  ) {
    super(`illegal batch transition ${from} -> ${to}`);
    this.name = "IllegalTransitionError";
  }
}
