/**
 * The engine's tracer port on OpenTelemetry: a request's trace is its caller's span context;
 * each model batch becomes a span of its own, in the trace of the request that waited longest and
 * linked to every request it served, with the inference on its thread inside it; each request
 * gets a span for its wait in the queue.
 */
import {
  context,
  type Link,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import type { EngineTracer, RequestTrace, TracedBatch } from "../engine/index.js";
import { endWith } from "./spans.js";
import { tracer } from "./tracing.js";

/** A request's trace: the span context of the call it came with. */
function traceOf(span: SpanContext): RequestTrace {
  return span as unknown as RequestTrace;
}

function spanContextOf(trace: RequestTrace): SpanContext {
  return trace as unknown as SpanContext;
}

/** See the file comment. */
export const otelEngineTracer: EngineTracer = {
  current() {
    const span = trace.getActiveSpan();
    return span?.isRecording() === true ? traceOf(span.spanContext()) : undefined;
  },

  span(name, work) {
    const parent = trace.getActiveSpan();
    if (parent === undefined || !parent.isRecording()) return work();
    return tracer().startActiveSpan(name, (span) => endWith(span, work));
  },

  batch(batch: TracedBatch, work: () => void) {
    const [first] = [...batch.requests].sort((a, b) => a.arrival - b.arrival);
    if (first === undefined) return work();
    for (const request of batch.requests) {
      const parent = trace.setSpanContext(context.active(), spanContextOf(request.trace));
      tracer()
        .startSpan(
          "queue",
          {
            startTime: request.arrival,
            attributes: {
              "batch_processor.model": batch.model,
              "batch_processor.items": request.items,
            },
          },
          parent,
        )
        .end(batch.dispatchedAt);
    }
    const links: Link[] = batch.requests.map((r) => ({ context: spanContextOf(r.trace) }));
    const span = tracer().startSpan(
      `batch ${batch.model}`,
      {
        kind: SpanKind.INTERNAL,
        startTime: batch.dispatchedAt,
        links,
        attributes: {
          "batch_processor.model": batch.model,
          "batch_processor.batch_size": batch.size,
          "batch_processor.requests": batch.requests.length,
        },
      },
      trace.setSpanContext(context.active(), spanContextOf(first.trace)),
    );
    const inside = trace.setSpan(context.active(), span);
    if (batch.error === undefined) {
      tracer()
        .startSpan(
          "inference",
          {
            startTime: batch.endedAt - batch.inferenceMs,
            attributes: { "batch_processor.model": batch.model },
          },
          inside,
        )
        .end(batch.endedAt);
    } else span.setStatus({ code: SpanStatusCode.ERROR, message: batch.error });
    try {
      context.with(inside, work);
    } finally {
      span.end(batch.endedAt);
    }
  },
};
