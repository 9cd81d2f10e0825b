/**
 * A call's span: the server side of an RPC, whatever its protocol, in the trace its caller's W3C
 * `traceparent` (and `tracestate`) header names, or a new trace. Its service method runs inside
 * it, so the engine's spans (admission, the queue, store writes) join the same trace.
 */
import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";
import { tracer, tracingOn } from "./tracing.js";

/** A call's span and the context its work runs in. */
export interface CallSpan {
  readonly context: Context;
  /** Ends the span with the call's code (`ok`, or the error code's name). */
  end(code: string): void;
}

type Headers = (name: string) => string | null | undefined;

const HEADERS: TextMapGetter<Headers> = {
  get: (header, key) => header(key) ?? undefined,
  // The W3C propagator reads the keys it knows by name.
  keys: () => [],
};

/**
 * The span of a call to `service`/`method` by `protocol`, its parent read from the headers;
 * undefined while tracing is off (so an untraced server does no tracing work per call).
 */
export function startCallSpan(
  protocol: string,
  service: string,
  method: string,
  header: Headers,
): CallSpan | undefined {
  if (!tracingOn()) return undefined;
  const parent = propagation.extract(ROOT_CONTEXT, header, HEADERS);
  const span: Span = tracer().startSpan(
    `${service}/${method}`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        "rpc.system": protocol === "grpc" ? "grpc" : protocol === "rest" ? "http" : protocol,
        "rpc.service": service,
        "rpc.method": method,
        "batch_processor.protocol": protocol,
      },
    },
    parent,
  );
  return {
    context: trace.setSpan(parent, span),
    end(code) {
      span.setAttribute("rpc.response.status_code", code);
      if (code !== "ok") span.setStatus({ code: SpanStatusCode.ERROR, message: code });
      span.end();
    },
  };
}

/** Runs `work` inside the call's span, when there is one. */
export function inCallSpan<T>(span: CallSpan | undefined, work: () => T): T {
  return span === undefined ? work() : context.with(span.context, work);
}
