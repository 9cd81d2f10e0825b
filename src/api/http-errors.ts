/**
 * Errors of the API port's HTTP routing itself, before any method runs: each gets its own HTTP
 * status from the one error mapping (`error-mapping.ts`), and a code for the RPC protocols.
 */
import { DomainError, echo } from "../engine/index.js";

/** An HTTP method a route does not serve; `allowed` lists those it does (HTTP 405). */
export class MethodNotAllowedError extends DomainError {
  readonly code = "INVALID_ARGUMENT";
  constructor(
    method: string,
    readonly allowed: readonly string[],
  ) {
    super(`method: ${echo(method)} is not allowed here; use ${allowed.join(" or ")}`);
    this.name = "MethodNotAllowedError";
  }
}

/** No route or RPC at this path (HTTP 404). */
export class RouteNotFoundError extends DomainError {
  readonly code = "NOT_FOUND";
  constructor(path: string) {
    super(`no route ${echo(path)}`);
    this.name = "RouteNotFoundError";
  }
}

/** A content type the path's protocols do not read; `accepted` lists those they do (HTTP 415). */
export class UnsupportedMediaTypeError extends DomainError {
  readonly code = "INVALID_ARGUMENT";
  constructor(
    contentType: string | undefined,
    readonly accepted: readonly string[],
  ) {
    super(`content-type: ${echo(contentType ?? "")} is not read here; use ${accepted.join(", ")}`);
    this.name = "UnsupportedMediaTypeError";
  }
}
