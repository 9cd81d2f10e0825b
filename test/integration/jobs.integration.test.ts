/**
 * Jobs over every protocol, against a whole server: a streamed NDJSON upload (gzip, in pieces)
 * over REST, client streams over native gRPC and Connect, results in input order from any line,
 * watch, cancel, ownership, and the signed callback.
 */
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CreateJobRequestSchema,
  GetJobResultsRequestSchema,
  type Job,
  type JobResult,
  JobSchema,
} from "../../gen/batchprocessor/v1/job_pb.js";
import { grpcServiceDefinition, SIGNATURE_HEADER, signCallback } from "../../src/api/index.js";
import type { RunningServer } from "../../src/server.js";
import { createTestModelRepo, type TestModelRepo } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const ALICE = "alice-key";
const BOB = "bob-key";
let repo: TestModelRepo;
let server: RunningServer;
let base: string;

beforeAll(async () => {
  repo = createTestModelRepo({ dense: false });
  server = await startTestServer(repo.dir, {
    API_KEYS: `${ALICE},${BOB}`,
    ADMIN_API_KEYS: "",
    REQUEST_TIMEOUT_MS: "1500",
  });
  base = `http://127.0.0.1:${server.apiPort}`;
});
afterAll(async () => {
  await server.close();
  repo.cleanup();
});

/** n JSONL lines `{"input": [i, 1, 2], "id": "r<i>"}`, 1-based. */
function jsonl(n: number): string {
  let text = "";
  for (let i = 1; i <= n; i++) text += `${JSON.stringify({ input: [i, 1, 2], id: `r${i}` })}\n`;
  return text;
}

/** POSTs `pieces` as one chunked body, each written `gapMs` after the one before. */
function upload(
  path: string,
  pieces: readonly Buffer[],
  headers: Record<string, string>,
  gapMs = 5,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method: "POST", headers }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    (async () => {
      for (const piece of pieces) {
        if (req.destroyed) return;
        req.write(piece);
        await new Promise((r) => setTimeout(r, gapMs));
      }
      req.end();
    })().catch(reject);
  });
}

async function get(path: string, key = ALICE): Promise<{ status: number; text: string }> {
  const response = await fetch(`${base}${path}`, { headers: { "x-api-key": key } });
  return { status: response.status, text: await response.text() };
}

async function waitEnded(jobId: string, key = ALICE): Promise<Record<string, unknown>> {
  const { text } = await get(`/api/batch-processor/jobs/${jobId}/watch`, key);
  const events = text
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return events.at(-1) as Record<string, unknown>;
}

function split(buffer: Buffer, size: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < buffer.length; at += size) pieces.push(buffer.subarray(at, at + size));
  return pieces;
}

describe("jobs over REST", () => {
  it("takes a gzipped NDJSON upload streamed in pieces, answers 201, and runs every line", async () => {
    const text = `${jsonl(1500)}\n{"input": [1, "x"]}\n[7, 8, 9]`;
    const { status, body } = await upload(
      "/api/batch-processor/jobs?job_id=rest-1&priority=high&completion_window=2h",
      split(gzipSync(text), 997),
      {
        "x-api-key": ALICE,
        "content-type": "application/x-ndjson",
        "content-encoding": "gzip",
      },
    );
    expect(status).toBe(201);
    const created = JSON.parse(body);
    expect(created).toMatchObject({
      job_id: "rest-1",
      status: "queued",
      priority: "high",
      model_id: "default",
      counts: { total: 1502, completed: 0, failed: 0, invalid: 1 },
    });
    expect(Date.parse(created.expires_at) - Date.parse(created.created_at)).toBe(2 * 3_600_000);
    const ended = await waitEnded("rest-1");
    expect(ended).toMatchObject({
      status: "completed",
      progress: 1,
      counts: { total: 1502, completed: 1501, failed: 0, invalid: 1 },
    });

    const results = (await get("/api/batch-processor/jobs/rest-1/results")).text.trim().split("\n");
    expect(results).toHaveLength(1502);
    const parsed = results.map((line) => JSON.parse(line));
    expect(parsed.map((r) => r.line)).toEqual([
      ...Array.from({ length: 1500 }, (_, k) => k + 1),
      1502,
      1503,
    ]);
    expect(parsed[0]).toMatchObject({ line: 1, id: "r1", label: expect.any(String) });
    expect(parsed[0].output).toHaveLength(3);
    expect(parsed[1500]).toEqual({
      line: 1502,
      error: {
        code: "INVALID_ARGUMENT",
        message: 'line 1502: input[1]: expected a finite number, got "x"',
      },
    });
    expect(parsed[1501]).not.toHaveProperty("id");
    const from = (await get("/api/batch-processor/jobs/rest-1/results?from_line=1499")).text
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line).line);
    expect(from).toEqual([1499, 1500, 1502, 1503]);
    const metrics = (await get("/metrics")).text;
    expect(metrics).toMatch(
      /batch_processor_job_lines_total\{model="default",outcome="invalid"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /batch_processor_job_lines_total\{model="default",outcome="completed"\} [1-9]\d{3}/,
    );
  });

  it("takes an upload that outlasts REQUEST_TIMEOUT_MS while it keeps sending, and ends one that stalls", async () => {
    // Six pieces 500 ms apart: 3 s in all, twice the server's REQUEST_TIMEOUT_MS of 1.5 s.
    const steady = await upload(
      "/api/batch-processor/jobs?job_id=slow",
      split(Buffer.from(jsonl(60)), 500),
      {
        "x-api-key": ALICE,
      },
      500,
    );
    expect(steady.status).toBe(201);
    expect(JSON.parse(steady.body).counts.total).toBe(60);
    const stalled = await upload(
      "/api/batch-processor/jobs?job_id=stalled",
      [Buffer.from(jsonl(5)), Buffer.from(jsonl(5))],
      { "x-api-key": ALICE },
      4000,
    ).catch((error: Error) => ({ status: 0, body: error.message }));
    expect([0, 408]).toContain(stalled.status);
    expect((await get("/api/batch-processor/jobs/stalled")).status).toBe(404);
    // Followed as Server-Sent Events, the last event's id ends in "-end".
    const sse = await fetch(`${base}/api/batch-processor/jobs/slow/watch`, {
      headers: { "x-api-key": ALICE, accept: "text/event-stream" },
    });
    const events = (await sse.text()).trim().split("\n\n");
    expect(events.at(-1)).toMatch(/^id: \d+-end\nevent: status\ndata: \{.*"status":"completed"/);
  });

  it("keeps a job to its owner, lists it, and refuses to cancel one that has ended", async () => {
    await upload("/api/batch-processor/jobs?job_id=owned", [Buffer.from(jsonl(3))], {
      "x-api-key": ALICE,
    });
    await waitEnded("owned");
    expect((await get("/api/batch-processor/jobs/owned", BOB)).status).toBe(404);
    const listed = JSON.parse((await get("/api/batch-processor/jobs?status=completed")).text);
    expect(listed.jobs.map((j: { job_id: string }) => j.job_id)).toContain("owned");
    expect(JSON.parse((await get("/api/batch-processor/jobs", BOB)).text).jobs).toEqual([]);
    const cancel = await fetch(`${base}/api/batch-processor/jobs/owned/cancel`, {
      method: "POST",
      headers: { "x-api-key": ALICE },
    });
    expect(cancel.status).toBe(409);
    expect(((await cancel.json()) as { error: string }).error).toBe("failed_precondition");
  });

  it("names the bad query parameter and refuses the whole upload with on_invalid=reject", async () => {
    const bad = await upload(
      "/api/batch-processor/jobs?completion_window=10y",
      [Buffer.from(jsonl(2))],
      {
        "x-api-key": ALICE,
      },
    );
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).message).toMatch(/^completion_window: /);
    const rejected = await upload(
      "/api/batch-processor/jobs?job_id=strict&on_invalid=reject",
      [Buffer.from(`${jsonl(2)}{"input": []}\n`)],
      { "x-api-key": ALICE },
    );
    expect(rejected.status).toBe(400);
    expect(JSON.parse(rejected.body).message).toContain(
      "line 3: input: must contain at least 1 number",
    );
    expect((await get("/api/batch-processor/jobs/strict")).status).toBe(404);
    const anonymous = await upload("/api/batch-processor/jobs", [Buffer.from(jsonl(2))], {});
    expect(anonymous.status).toBe(401);
  });

  it("POSTs the job's end to its callback_url, signed, and retries while the receiver fails", async () => {
    const received: { body: string; signature: string | undefined }[] = [];
    const receiver: Server = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        received.push({ body, signature: req.headers[SIGNATURE_HEADER] as string | undefined });
        res.writeHead(received.length === 1 ? 503 : 204);
        res.end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    const port = (receiver.address() as AddressInfo).port;
    const url = encodeURIComponent(`http://127.0.0.1:${port}/hook`);
    await upload(
      `/api/batch-processor/jobs?job_id=hooked&callback_url=${url}&callback_secret=s3cret`,
      [Buffer.from(jsonl(5))],
      { "x-api-key": ALICE },
    );
    try {
      const started = Date.now();
      while (received.length < 2 && Date.now() - started < 10_000)
        await new Promise((resolve) => setTimeout(resolve, 50));
      expect(received).toHaveLength(2);
      const [, delivered] = received as [unknown, { body: string; signature: string }];
      expect(JSON.parse(delivered.body)).toMatchObject({
        job_id: "hooked",
        status: "completed",
        counts: { total: 5, completed: 5 },
      });
      const timestamp = Number(/^t=(\d+),/.exec(delivered.signature)?.[1]);
      expect(delivered.signature).toBe(signCallback("s3cret", timestamp, delivered.body));
      expect(delivered.signature).not.toBe(signCallback("other", timestamp, delivered.body));
    } finally {
      receiver.close();
    }
  });
});

describe("jobs over gRPC and Connect", () => {
  it("takes a native gRPC client stream of spec, raw bytes and items, and streams results", async () => {
    const Client = grpc.makeGenericClientConstructor(
      grpcServiceDefinition(),
      "BatchProcessorService",
    );
    const client = new Client(
      `127.0.0.1:${server.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as unknown as Record<string, (...args: unknown[]) => unknown>;
    const metadata = new grpc.Metadata();
    metadata.set("x-api-key", ALICE);
    try {
      const job = await new Promise<Job>((resolve, reject) => {
        const stream = (
          client.createJob as (...a: unknown[]) => grpc.ClientWritableStream<unknown>
        )(metadata, (error: grpc.ServiceError | null, response: Job) =>
          error ? reject(error) : resolve(response),
        );
        const text = Buffer.from(jsonl(10));
        stream.write(
          create(CreateJobRequestSchema, { part: { case: "spec", value: { jobId: "g1" } } }),
        );
        // A line split between two messages is one line.
        for (const piece of [text.subarray(0, 33), text.subarray(33)])
          stream.write(
            create(CreateJobRequestSchema, { part: { case: "lines", value: { data: piece } } }),
          );
        stream.write(
          create(CreateJobRequestSchema, {
            part: { case: "items", value: { items: [{ input: [5, 6, 7], id: "item-11" }] } },
          }),
        );
        stream.end();
      });
      expect(job.jobId).toBe("g1");
      expect(job.counts?.total).toBe(11);
      await waitEnded("g1");
      const lines = await new Promise<JobResult[]>((resolve, reject) => {
        const out: JobResult[] = [];
        const stream = (
          client.getJobResults as (...a: unknown[]) => grpc.ClientReadableStream<JobResult>
        )(create(GetJobResultsRequestSchema, { jobId: "g1", fromLine: 10 }), metadata);
        stream.on("data", (m: JobResult) => out.push(m));
        stream.on("error", reject);
        stream.on("end", () => resolve(out));
      });
      expect(lines.map((r) => [r.line, r.id])).toEqual([
        [10, "r10"],
        [11, "item-11"],
      ]);
      const refused = await new Promise<grpc.ServiceError>((resolve) => {
        const stream = (
          client.createJob as (...a: unknown[]) => grpc.ClientWritableStream<unknown>
        )(metadata, (error: grpc.ServiceError) => resolve(error));
        stream.write(
          create(CreateJobRequestSchema, {
            part: { case: "lines", value: { data: Buffer.from("[1]\n") } },
          }),
        );
        stream.end();
      });
      expect(refused.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(refused.details).toMatch(/^spec: /);
    } finally {
      (client as unknown as grpc.Client).close();
    }
  });

  it("takes a Connect client stream of enveloped messages", async () => {
    const envelope = (bytes: Uint8Array) => {
      const out = Buffer.alloc(5 + bytes.length);
      out.writeUInt32BE(bytes.length, 1);
      out.set(bytes, 5);
      return out;
    };
    const messages = [
      create(CreateJobRequestSchema, {
        part: { case: "spec", value: { jobId: "c1", priority: "normal" } },
      }),
      create(CreateJobRequestSchema, {
        part: { case: "lines", value: { data: Buffer.from(jsonl(4)) } },
      }),
    ].map((m) => envelope(toBinary(CreateJobRequestSchema, m)));
    const response = await fetch(`${base}/batchprocessor.v1.BatchProcessorService/CreateJob`, {
      method: "POST",
      headers: { "content-type": "application/connect+proto", "x-api-key": ALICE },
      body: Buffer.concat(messages),
    });
    expect(response.status).toBe(200);
    const body = Buffer.from(await response.arrayBuffer());
    const length = body.readUInt32BE(1);
    const job = fromBinary(JobSchema, body.subarray(5, 5 + length));
    expect(job).toMatchObject({ jobId: "c1", priority: "normal" });
    expect(job.counts?.total).toBe(4);
    expect(body[5 + length]).toBe(0x02);
    expect((await waitEnded("c1")).status).toBe("completed");
  });
});
