/** Builds the transport-neutral {@link CallContext} from a request's headers and signals. */
import type { BatchProcessorServiceImpl, CallContext } from "../service/batch-processor-service.js";
import type { Authenticator, HeaderGetter } from "./auth.js";
import type { RequestLogEntry } from "./request-log.js";

/** What every adapter needs to call the service. */
export interface ServiceBinding {
  readonly impl: BatchProcessorServiceImpl;
  readonly auth: Authenticator;
  /** Told about every finished request (metrics). */
  readonly onRequest?: ((entry: RequestLogEntry) => void) | undefined;
}

/**
 * Authenticates the caller. The call's own signal (client gone) is passed as is: shutdown needs
 * no signal of its own, the engine ends watchers and queued infers itself when it closes.
 */
export function callContext(
  binding: ServiceBinding,
  header: HeaderGetter,
  signal: AbortSignal,
): CallContext {
  return {
    principal: binding.auth.authenticate(header),
    signal,
  };
}

/** The implementation's function for a method, by the descriptor's local name. */
export function implMethod(
  impl: BatchProcessorServiceImpl,
  localName: string,
): (request: never, call: CallContext) => unknown {
  const fn = (impl as unknown as Record<string, unknown>)[localName];
  if (typeof fn !== "function")
    throw new Error(`service implementation has no method ${localName}`);
  return fn.bind(impl) as (request: never, call: CallContext) => unknown;
}
