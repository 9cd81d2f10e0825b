/**
 * An OTLP/HTTP (JSON) receiver for the benchmarks: the server's own spans, kept by trace id, so a
 * harness can tell where each of its requests spent its time inside the server. Only the span
 * names, starts and ends are read.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** A span as the receiver keeps it; times in epoch ms. */
export interface ReceivedSpan {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

interface OtlpJson {
  resourceSpans?: {
    scopeSpans?: {
      spans?: {
        traceId?: string;
        name?: string;
        startTimeUnixNano?: string | number;
        endTimeUnixNano?: string | number;
      }[];
    }[];
  }[];
}

export interface TraceReceiver {
  /** The endpoint to give the server as `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`. */
  readonly url: string;
  /** The spans received for a trace id (32 hex digits), in no order. */
  spansOf(traceId: string): readonly ReceivedSpan[];
  close(): Promise<void>;
}

/** Starts a receiver on a free loopback port. */
export async function startTraceReceiver(): Promise<TraceReceiver> {
  const byTrace = new Map<string, ReceivedSpan[]>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as OtlpJson;
        for (const resource of body.resourceSpans ?? [])
          for (const scope of resource.scopeSpans ?? [])
            for (const span of scope.spans ?? []) {
              if (span.traceId === undefined || span.name === undefined) continue;
              const list = byTrace.get(span.traceId) ?? [];
              list.push({
                name: span.name,
                start: Number(span.startTimeUnixNano) / 1e6,
                end: Number(span.endTimeUnixNano) / 1e6,
              });
              byTrace.set(span.traceId, list);
            }
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spansOf: (traceId) => byTrace.get(traceId) ?? [],
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
