/** Tracing (OpenTelemetry): its start from the settings, a call's span, the engine's tracer. */
export { type CallSpan, inCallSpan, startCallSpan } from "./call-span.js";
export { inRemoteTrace, traceHeaders } from "./cluster-hop.js";
export { otelEngineTracer } from "./engine-tracer.js";
export { tracedStore } from "./traced-store.js";
export { startTracing, type Tracing, type TracingSettings, tracesUrl } from "./tracing.js";
