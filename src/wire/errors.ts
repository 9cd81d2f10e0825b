/** What a request can break on the wire itself, before any of its fields is read. */
import { DomainError } from "../engine/index.js";

/** The setting that bounds request bodies and messages, named in errors. */
export const LIMIT_SETTING = "MAX_REQUEST_BYTES";

/** The request is bigger than the server accepts (HTTP 413 on the API port). */
export class PayloadTooLargeError extends DomainError {
  readonly code = "RESOURCE_EXHAUSTED";
  constructor(
    readonly limitBytes: number,
    what = "request body",
    /** The setting that sets the limit, named in the message. */
    setting?: string,
  ) {
    super(
      `${what} is larger than the ${limitBytes} bytes this server accepts${setting === undefined ? "" : ` (${setting})`}`,
    );
    this.name = "PayloadTooLargeError";
  }
}
