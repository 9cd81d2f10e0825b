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
  | "CANCELLED";

/** Base class of every error whose message is safe to show to a client. */
export abstract class DomainError extends Error {
  abstract readonly code: ErrorCode;
}

/** A request field breaks a rule; `field` is its wire name (`data[3].input`). */
export class InvalidInputError extends DomainError {
  readonly code = "INVALID_ARGUMENT";
  constructor(
    readonly field: string,
    rule: string,
  ) {
    super(`${field}: ${rule}`);
    this.name = "InvalidInputError";
  }
}

/** No batch with this id is visible to the caller. */
export class BatchNotFoundError extends DomainError {
  readonly code = "NOT_FOUND";
  constructor(readonly batchId: string) {
    super(`batch ${JSON.stringify(batchId)} not found`);
    this.name = "BatchNotFoundError";
  }
}

/** The model named in `metadata.model_id` does not exist. */
export class ModelNotFoundError extends DomainError {
  readonly code = "NOT_FOUND";
  constructor(
    readonly modelId: string,
    readonly available: readonly string[],
  ) {
    super(
      `metadata.model_id: model ${JSON.stringify(modelId)} not found; available models: ${
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
    super(`model ${JSON.stringify(modelId)} is unavailable: ${reason}`);
    this.name = "ModelUnavailableError";
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
      `batch ${JSON.stringify(batchId)} is ${status}; results are available once it ends (or ask for partial results)`,
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
      `batch ${JSON.stringify(batchId)} has already ${status === "failed" ? "failed" : "completed"} and can no longer be cancelled`,
    );
    this.name = "BatchEndedError";
  }
}

/** A client `batch_id` was reused with a different payload. */
export class BatchExistsError extends DomainError {
  readonly code = "ALREADY_EXISTS";
  constructor(readonly batchId: string) {
    super(`batch_id: ${JSON.stringify(batchId)} already exists with a different payload`);
    this.name = "BatchExistsError";
  }
}

/** Admission control rejected a submit; nothing of it was queued. */
export class QueueFullError extends DomainError {
  readonly code = "RESOURCE_EXHAUSTED";
  constructor(
    message: string,
    /** A hint for `Retry-After`, in milliseconds. */
    readonly retryAfterMs: number,
  ) {
    super(message);
    this.name = "QueueFullError";
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

/** The request is bigger than the server accepts. */
export class PayloadTooLargeError extends DomainError {
  readonly code = "RESOURCE_EXHAUSTED";
  constructor(readonly limitBytes: number) {
    super(
      `request body is larger than the ${limitBytes} bytes this server accepts (MAX_REQUEST_BYTES)`,
    );
    this.name = "PayloadTooLargeError";
  }
}

/** The caller may not perform this operation. */
export class PermissionDeniedError extends DomainError {
  readonly code = "PERMISSION_DENIED";
  constructor(action: string) {
    super(`this API key may not ${action}`);
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
