/**
 * The one mapping from errors to what clients see, shared by every transport and by the API
 * port's own answers (404, 405, 413, 415, 401 on `/metrics`): a domain error keeps its message and gets
 * its code, HTTP status and headers; anything else becomes INTERNAL with an `error_id` that is in
 * the log, and its message goes to the log only.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { DomainError, type EngineLogger, type ErrorCode } from "../engine/index.js";
import { codeName, PayloadTooLargeError } from "../wire/index.js";
import { MethodNotAllowedError, UnsupportedMediaTypeError } from "./http-errors.js";

const CODES: Record<ErrorCode, Code> = {
  INVALID_ARGUMENT: Code.InvalidArgument,
  UNAUTHENTICATED: Code.Unauthenticated,
  PERMISSION_DENIED: Code.PermissionDenied,
  NOT_FOUND: Code.NotFound,
  FAILED_PRECONDITION: Code.FailedPrecondition,
  ALREADY_EXISTS: Code.AlreadyExists,
  RESOURCE_EXHAUSTED: Code.ResourceExhausted,
  DEADLINE_EXCEEDED: Code.DeadlineExceeded,
  UNAVAILABLE: Code.Unavailable,
  CANCELLED: Code.Canceled,
  UNIMPLEMENTED: Code.Unimplemented,
};

/** HTTP status of each code on the REST routes. */
const HTTP_STATUS: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.NotFound]: 404,
  [Code.FailedPrecondition]: 409,
  [Code.AlreadyExists]: 409,
  [Code.ResourceExhausted]: 429,
  [Code.DeadlineExceeded]: 504,
  [Code.Unavailable]: 503,
  [Code.Canceled]: 499,
  [Code.Unimplemented]: 501,
  [Code.OutOfRange]: 400,
  [Code.Aborted]: 409,
};

/** Header carrying `error_id` on every protocol (and in REST bodies). */
export const ERROR_ID_HEADER = "x-error-id";

/** Converts anything thrown while serving a call into the ConnectError a client may see. */
export function toConnectError(
  error: unknown,
  log: EngineLogger,
  context: object = {},
): ConnectError {
  if (error instanceof DomainError) {
    // The domain error stays the cause, so the HTTP status below is chosen by its type.
    const connectError = new ConnectError(error.message, CODES[error.code], {}, [], error);
    if (error.retryAfterMs !== undefined)
      connectError.metadata.set("retry-after", String(Math.ceil(error.retryAfterMs / 1000)));
    if (error instanceof MethodNotAllowedError)
      connectError.metadata.set("allow", error.allowed.join(", "));
    if (error instanceof UnsupportedMediaTypeError)
      connectError.metadata.set("accept-post", error.accepted.join(", "));
    return connectError;
  }
  const errorId = randomUUID();
  log.error({ err: error, errorId, ...context }, "internal error");
  const internal = new ConnectError(`internal error (error_id ${errorId})`, Code.Internal);
  internal.metadata.set(ERROR_ID_HEADER, errorId);
  return internal;
}

/** The HTTP status of an error on the REST routes and the API port's own answers. */
export function httpStatusOf(error: ConnectError): number {
  if (error.cause instanceof PayloadTooLargeError) return 413;
  if (error.cause instanceof MethodNotAllowedError) return 405;
  if (error.cause instanceof UnsupportedMediaTypeError) return 415;
  return HTTP_STATUS[error.code] ?? 500;
}

/** The REST error body: `{"error": "<code>", "message": "...", "error_id": "..."}`. */
export function restErrorBody(error: ConnectError): {
  error: string;
  message: string;
  error_id?: string;
} {
  const errorId = error.metadata.get(ERROR_ID_HEADER);
  return {
    error: codeName(error.code),
    message: error.rawMessage,
    ...(errorId === null ? {} : { error_id: errorId }),
  };
}
