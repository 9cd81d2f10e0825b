/**
 * The cluster hop: a stored batch that another node runs keeps its caller's trace. The node that
 * queues it writes the trace's W3C headers into the queued job; the node that takes it runs the
 * batch in a span of that trace.
 */
import { context, propagation, ROOT_CONTEXT, SpanKind, trace } from "@opentelemetry/api";
import { endWith } from "./spans.js";
import { tracer, tracingOn } from "./tracing.js";

/** The W3C headers of the request being served; undefined when it is not traced. */
export function traceHeaders(): Record<string, string> | undefined {
  if (!tracingOn() || trace.getActiveSpan()?.isRecording() !== true) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return Object.keys(carrier).length > 0 ? carrier : undefined;
}

/** Runs `work` (a taken batch's run) as a span `name` in the trace `headers` name, if any. */
export function inRemoteTrace<T>(
  headers: Readonly<Record<string, string>> | undefined,
  name: string,
  attributes: Record<string, string | number>,
  work: () => T,
): T {
  if (headers === undefined || !tracingOn()) return work();
  const parent = propagation.extract(ROOT_CONTEXT, headers);
  const span = tracer().startSpan(name, { kind: SpanKind.CONSUMER, attributes }, parent);
  return context.with(trace.setSpan(parent, span), () => endWith(span, work));
}
