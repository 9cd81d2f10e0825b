/**
 * What every API call goes through, whatever its protocol, written once (an interceptor in
 * connect-es's sense): load shedding and authentication from the headers before any body is read,
 * the service method, the one error mapping, and one request log line and metric per call. An
 * adapter only reads its wire format: it starts a {@link Call}, admits it, decodes the request,
 * runs it, and writes what the call answers.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { GRPCInferenceService } from "../../gen/inference/grpc_predict_v2_pb.js";
import { CancelledError, type EngineLogger, type Principal } from "../engine/index.js";
import type { BatchProcessorServiceImpl, CallContext } from "../service/batch-processor-service.js";
import type { InferenceServiceImpl } from "../service/inference-service.js";
import { type CallSpan, inCallSpan, startCallSpan } from "../tracing/index.js";
import { codeName } from "../wire/index.js";
import type { Authenticator, HeaderGetter } from "./auth.js";
import { toConnectError } from "./error-mapping.js";
import type { OverloadGuard } from "./overload.js";
import { batchIdOf, logRequest, type RequestLogEntry } from "./request-log.js";

/** The protocols calls arrive by. */
export type Protocol = "grpc" | "connect" | "grpc-web" | "rest" | "websocket";

/** What every adapter needs to serve calls. */
export interface ServiceBinding {
  readonly impl: BatchProcessorServiceImpl;
  /** The Open Inference Protocol's service (native gRPC); absent where it is not served. */
  readonly inference?: InferenceServiceImpl | undefined;
  readonly auth: Authenticator;
  readonly guard: OverloadGuard;
  readonly log: EngineLogger;
  /** Told about every finished call (metrics). */
  readonly onRequest?: ((entry: RequestLogEntry) => void) | undefined;
}

type ImplFn = (request: never, call: CallContext) => unknown;

/** One call from its arrival to its answer; see the file comment. */
export class Call {
  readonly #binding: ServiceBinding;
  readonly #protocol: Protocol;
  readonly #method: DescMethod;
  readonly #started = performance.now();
  #principal: Principal | undefined;
  #release: (() => void) | undefined;
  /** The batch a request names, for the request log. */
  #requestBatchId: string | undefined;
  #span: CallSpan | undefined;
  #finished = false;

  constructor(binding: ServiceBinding, protocol: Protocol, method: DescMethod) {
    this.#binding = binding;
    this.#protocol = protocol;
    this.#method = method;
  }

  /** The RPC this call is for. */
  get method(): DescMethod {
    return this.#method;
  }

  /**
   * Lets the call in: sheds it when the server is overloaded, then authenticates it. Both read
   * headers only, so a refused call never has its body read.
   */
  admit(header: HeaderGetter): void {
    this.#span = startCallSpan(
      this.#protocol,
      this.#method.parent.typeName,
      this.#method.name,
      header,
    );
    this.#release = this.#binding.guard.enter(this.#method.methodKind !== "unary");
    this.#principal = this.#binding.auth.authenticate(header);
  }

  /**
   * Runs a unary method with its decoded request. Not an async function: one keeps its arguments
   * until it returns, and a large request's items would then live as long as its call.
   */
  unary(request: unknown, signal: AbortSignal): Promise<unknown> {
    try {
      this.#requestBatchId = batchIdOf(requestMessage(request));
      const impl = this.#impl();
      const principal = this.#who();
      return Promise.resolve(
        inCallSpan(this.#span, () => impl(request as never, { principal, signal })),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Reads a unary method's request with `read` and starts the method; resolves once it has
   * started, with its answer boxed (so that this does not wait for it). Adapters wait for the
   * answer out here, holding no reference to the request while the method runs.
   */
  async startUnary(
    read: () => Promise<unknown>,
    signal: AbortSignal,
  ): Promise<{ readonly answer: Promise<unknown> }> {
    return { answer: this.unary(await read(), signal) };
  }

  /** Runs a server-streaming method with its decoded request. */
  stream(request: unknown, signal: AbortSignal): AsyncIterable<unknown> {
    this.#requestBatchId = batchIdOf(requestMessage(request));
    const impl = this.#impl();
    const principal = this.#who();
    return inCallSpan(
      this.#span,
      () => impl(request as never, { principal, signal }) as AsyncIterable<unknown>,
    );
  }

  /** Runs a client-streaming method with its stream of decoded requests. */
  async clientStream(requests: AsyncIterable<unknown>, signal: AbortSignal): Promise<unknown> {
    const impl = this.#impl();
    const principal = this.#who();
    return inCallSpan(this.#span, () => impl(requests as never, { principal, signal }));
  }

  /** Ends the call as answered. */
  ok(response?: unknown): void {
    this.#finish("ok", response);
  }

  /** Ends the call as failed: what the client sees, by the one mapping. */
  fail(error: unknown): ConnectError {
    const connectError = toConnectError(error, this.#binding.log, {
      protocol: this.#protocol,
      method: this.#method.name,
    });
    this.#finish(codeName(connectError.code));
    return connectError;
  }

  /** Ends the call as cancelled by the client, unless it has ended already. */
  cancelled(): void {
    if (!this.#finished) this.fail(new CancelledError());
  }

  #impl(): ImplFn {
    const target =
      this.#method.parent.typeName === GRPCInferenceService.typeName
        ? this.#binding.inference
        : this.#binding.impl;
    const fn = (target as unknown as Record<string, ImplFn> | undefined)?.[this.#method.localName];
    if (typeof fn !== "function")
      throw new Error(`service implementation has no method ${this.#method.localName}`);
    return fn.bind(target) as ImplFn;
  }

  #who(): Principal {
    if (this.#principal === undefined) throw new Error("a call runs only once admitted");
    return this.#principal;
  }

  #finish(code: string, response?: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#release?.();
    this.#span?.end(code);
    const entry: RequestLogEntry = {
      protocol: this.#protocol,
      method: this.#method.name,
      code,
      durationMs: performance.now() - this.#started,
      batchId: this.#requestBatchId ?? batchIdOf(response),
    };
    logRequest(this.#binding.log, entry);
    this.#binding.onRequest?.(entry);
  }
}

/** The message of a decoded request (a bulk-read submit carries its message inside). */
function requestMessage(request: unknown): unknown {
  return typeof request === "object" && request !== null && "message" in request
    ? (request as { message: unknown }).message
    : request;
}
