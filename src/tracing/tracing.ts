/**
 * Tracing: OpenTelemetry's SDK, started from the `OTEL_*` settings when they ask for traces and
 * otherwise not at all (the API's no-op tracer then makes every span free). Spans go over
 * OTLP/HTTP (JSON) in batches; the SDK's own variables (sampler, batch sizes, headers, resource
 * attributes) apply as the specification says. W3C `traceparent` is the propagation format.
 */
import { context, propagation, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import type { EngineLogger } from "../engine/index.js";

/** What decides whether and where traces go (the `OTEL_*` settings). */
export interface TracingSettings {
  readonly otelTracesExporter: "" | "otlp" | "none";
  readonly otelEndpoint: string;
  readonly otelTracesEndpoint: string;
  readonly otelServiceName: string;
  readonly otelSdkDisabled: boolean;
}

/** Started tracing: its destination, and the flush of what it holds. */
export interface Tracing {
  readonly url: string;
  /** Sends the spans it holds and stops. */
  shutdown(): Promise<void>;
}

/** The receiver's URL spans go to; undefined when no traces are asked for. */
export function tracesUrl(s: TracingSettings): string | undefined {
  if (s.otelSdkDisabled || s.otelTracesExporter === "none") return undefined;
  if (s.otelTracesEndpoint !== "") return s.otelTracesEndpoint;
  if (s.otelEndpoint !== "") return `${s.otelEndpoint.replace(/\/+$/, "")}/v1/traces`;
  return s.otelTracesExporter === "otlp" ? "http://localhost:4318/v1/traces" : undefined;
}

let started: Tracing | undefined;

/**
 * Starts the SDK when the settings ask for traces; undefined when they do not. One provider per
 * process: a second server in the same process shares the first one's.
 */
export function startTracing(s: TracingSettings, log: EngineLogger): Tracing | undefined {
  const url = tracesUrl(s);
  if (url === undefined) return undefined;
  if (started !== undefined) return started;
  const resource = resourceFromAttributes({ "service.name": s.otelServiceName }).merge(
    detectResources({ detectors: [envDetector] }),
  );
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url }))],
  });
  provider.register();
  log.info({ url }, "tracing: spans go over OTLP/HTTP");
  const tracing: Tracing = {
    url,
    async shutdown() {
      if (started !== tracing) return;
      started = undefined;
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
  started = tracing;
  return tracing;
}

/** Whether this process sends traces. */
export function tracingOn(): boolean {
  return started !== undefined;
}

/** This server's tracer (a no-op one while tracing is off). */
export const tracer = () => trace.getTracer("batch-processor");
