/**
 * Tracing over OTLP/HTTP: a local receiver takes the spans the server exports, and one request's
 * tree is read back from them: the call in the caller's trace (its `traceparent`), validation,
 * admission and the store write inside it, the wait in the queue, the model batch linked to the
 * call, the inference on its thread and the batch's store write inside the batch. Native gRPC
 * joins its caller's trace too, and a cluster's queue carries the trace to the node that runs a
 * stored batch.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, it } from "vitest";
import { SubmitBatchRequestSchema } from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { BatchProcessorClient } from "../../src/client/index.js";
import type { RunningServer } from "../../src/server.js";
import { dropCluster, REDIS_URL } from "../fixtures/cluster-node.js";
import { runCommand } from "../fixtures/commands.js";
import { createTestModelRepo, type TestModelRepo } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  links?: { traceId: string; spanId: string }[];
  attributes?: { key: string; value: Record<string, unknown> }[];
}

const KEY = "trace-key";
let repo: TestModelRepo;
let receiver: Server;
const spans: OtlpSpan[] = [];
const services: string[] = [];
let server: RunningServer;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      if (req.url === "/v1/traces") {
        const message = JSON.parse(body) as {
          resourceSpans: {
            resource: { attributes: { key: string; value: { stringValue?: string } }[] };
            scopeSpans: { spans: OtlpSpan[] }[];
          }[];
        };
        for (const r of message.resourceSpans) {
          const name = r.resource.attributes.find((a) => a.key === "service.name");
          services.push(name?.value.stringValue ?? "");
          for (const s of r.scopeSpans) spans.push(...s.spans);
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  repo = createTestModelRepo({ dense: false });
  server = await startTestServer(repo.dir, {
    API_KEYS: KEY,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
    OTEL_SERVICE_NAME: "bp-under-test",
  });
});

afterAll(async () => {
  await server?.close();
  receiver?.close();
  repo?.cleanup();
});

/** A REST submit of `inputs` in trace `traceId` (its parent {@link PARENT}), followed to its end. */
async function submitTraced(
  on: RunningServer,
  traceId: string,
  inputs: readonly number[][],
): Promise<void> {
  const base = `http://127.0.0.1:${on.apiPort}`;
  const submitted = await fetch(`${base}/api/batch-processor/submit`, {
    method: "POST",
    headers: {
      "x-api-key": KEY,
      "content-type": "application/json",
      traceparent: `00-${traceId}-${PARENT}-01`,
    },
    body: JSON.stringify({ data: inputs.map((input) => ({ input })) }),
  });
  expect(submitted.status).toBe(200);
  const { batch_id: batchId } = (await submitted.json()) as { batch_id: string };
  await (
    await fetch(`${base}/api/batch-processor/watch/${batchId}`, { headers: { "x-api-key": KEY } })
  ).text();
}

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";
const GRPC_TRACE = "0af7651916cd43dd8448eb211c80319c";

it("follows one REST submit and one gRPC infer through the call, the queue, the batch and the inference", async () => {
  await submitTraced(server, TRACE, [
    [1, 2, 3],
    [4, 5, 6],
  ]);

  const client = new grpc.Client(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set("x-api-key", KEY);
  metadata.set("traceparent", `00-${GRPC_TRACE}-${PARENT}-01`);
  const request = toBinary(
    SubmitBatchRequestSchema,
    create(SubmitBatchRequestSchema, { data: [{ input: [1, 2] }] }),
  );
  await new Promise<void>((resolve, reject) =>
    client.makeUnaryRequest(
      "/batchprocessor.v1.BatchProcessorService/Infer",
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(request),
      metadata,
      (error) => (error ? reject(error) : resolve()),
    ),
  );
  client.close();
  // Closing flushes what the exporter holds.
  await server.close();

  expect(services.every((s) => s === "bp-under-test")).toBe(true);
  const inTrace = spans.filter((s) => s.traceId === TRACE);
  const named = (name: string) => inTrace.filter((s) => s.name === name);
  const call = named("batchprocessor.v1.BatchProcessorService/SubmitBatch")[0] as OtlpSpan;
  expect(call, JSON.stringify(inTrace.map((s) => s.name))).toBeDefined();
  expect(call.parentSpanId).toBe(PARENT);
  expect(call.kind).toBe(2); // SERVER
  for (const step of ["validation", "admission", "store.createBatch", "queue"])
    expect(
      named(step).map((s) => s.parentSpanId),
      step,
    ).toContain(call.spanId);
  const queue = named("queue")[0] as OtlpSpan;
  const batch = named("batch default")[0] as OtlpSpan;
  expect(batch.links?.map((l) => l.spanId)).toContain(call.spanId);
  // The wait ends where the batch starts.
  expect(queue.endTimeUnixNano).toBe(batch.startTimeUnixNano);
  const inference = named("inference")[0] as OtlpSpan;
  expect(inference.parentSpanId).toBe(batch.spanId);
  expect(BigInt(inference.endTimeUnixNano)).toBeLessThanOrEqual(BigInt(batch.endTimeUnixNano));
  expect(BigInt(inference.startTimeUnixNano)).toBeGreaterThanOrEqual(
    BigInt(batch.startTimeUnixNano),
  );
  expect(named("store.save").map((s) => s.parentSpanId)).toContain(batch.spanId);

  const grpcSpans = spans.filter((s) => s.traceId === GRPC_TRACE);
  const infer = grpcSpans.find((s) => s.name === "batchprocessor.v1.BatchProcessorService/Infer");
  expect(infer?.parentSpanId).toBe(PARENT);
  expect(grpcSpans.map((s) => s.name)).toEqual(
    expect.arrayContaining(["validation", "admission", "queue", "batch default", "inference"]),
  );
});

it("carries the trace through the cluster's queue: the node that runs a stored batch joins its caller's trace", async () => {
  const prefix = `trace-${process.pid}-${Date.now()}`;
  const node = await startTestServer(repo.dir, {
    API_KEYS: KEY,
    REDIS_URL,
    CLUSTER_PREFIX: prefix,
    OWNER_SECRET: "test-owner-secret-of-at-least-32-characters",
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
  });
  const trace = "5bf92f3577b34da6a3ce929d0e0e4737";
  try {
    await submitTraced(node, trace, [[1, 2, 3]]);
  } finally {
    await node.close();
    await dropCluster(prefix);
  }
  const inTrace = spans.filter((s) => s.traceId === trace);
  const call = inTrace.find((s) => s.name.endsWith("/SubmitBatch")) as OtlpSpan;
  const run = inTrace.find((s) => s.name === "run batch");
  // The taker's span can only have the call as its parent if the trace rode on the queued job.
  expect(run?.parentSpanId, JSON.stringify(inTrace.map((s) => s.name))).toBe(call.spanId);
  expect(run?.kind).toBe(5); // CONSUMER
  const batch = inTrace.find((s) => s.name === "batch default");
  expect(batch?.links?.map((l) => l.spanId)).toContain(run?.spanId);
  expect(inTrace.find((s) => s.name === "inference")?.parentSpanId).toBe(batch?.spanId);
});

it("joins the trace the CLI is given in TRACEPARENT, and the one the TypeScript client sends", async () => {
  const traced = await startTestServer(repo.dir, {
    API_KEYS: KEY,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
  });
  const cliTrace = "6bf92f3577b34da6a3ce929d0e0e4738";
  const clientTrace = "7bf92f3577b34da6a3ce929d0e0e4739";
  try {
    const ran = await runCommand(
      process.execPath,
      [
        "--import",
        "tsx",
        fileURLToPath(new URL("../../src/cli.ts", import.meta.url)),
        "infer",
        "[1, 2, 3]",
      ],
      {
        env: {
          BATCH_PROCESSOR_URL: `http://127.0.0.1:${traced.apiPort}`,
          BATCH_PROCESSOR_API_KEY: KEY,
          TRACEPARENT: `00-${cliTrace}-${PARENT}-01`,
        },
      },
    );
    expect(ran.code, ran.err).toBe(0);
    const client = new BatchProcessorClient({
      url: `grpc://127.0.0.1:${traced.grpcPort}`,
      apiKey: KEY,
      headers: { traceparent: `00-${clientTrace}-${PARENT}-01` },
    });
    await client.infer({ data: [{ input: [1, 2] }] });
  } finally {
    await traced.close();
  }
  for (const trace of [cliTrace, clientTrace]) {
    const call = spans.find((s) => s.traceId === trace && s.name.endsWith("/Infer"));
    expect(call?.parentSpanId, trace).toBe(PARENT);
    expect(
      spans.some((s) => s.traceId === trace && s.name === "inference"),
      trace,
    ).toBe(true);
  }
});
