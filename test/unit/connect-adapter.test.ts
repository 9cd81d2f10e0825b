/**
 * The Connect and gRPC-Web server on its own, over a service whose methods the test controls: a
 * call's deadline, answers too large to send plain, and how each protocol ends a stream.
 */
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import {
  BatchResultsSchema,
  BatchStatusSchema,
  GetBatchStatusRequestSchema,
  SubmitBatchRequestSchema,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { createAuthenticator } from "../../src/api/auth.js";
import type { ServiceBinding } from "../../src/api/call.js";
import { createConnectHandler } from "../../src/api/connect-adapter.js";
import { createOverloadGuard } from "../../src/api/overload.js";
import { BatchNotFoundError, CancelledError } from "../../src/engine/index.js";
import type { BatchProcessorServiceImpl } from "../../src/service/index.js";

const SERVICE = "/batchprocessor.v1.BatchProcessorService";
const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0))
    await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A server of the adapter over `impl`, with keys off. */
async function serve(impl: Partial<BatchProcessorServiceImpl>): Promise<string> {
  const binding: ServiceBinding = {
    impl: impl as BatchProcessorServiceImpl,
    auth: createAuthenticator({ requireApiKey: false, secret: Buffer.from("s") }),
    guard: createOverloadGuard({ maxRequestsInFlight: 0, maxEventLoopDelayMs: 0 }),
    log: { debug() {}, info() {}, warn() {}, error() {} },
  };
  const handler = createConnectHandler(binding, { maxBodyBytes: 1 << 20 });
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}${SERVICE}`;
}

const infer = toBinary(SubmitBatchRequestSchema, create(SubmitBatchRequestSchema, { data: [] }));

/** The enveloped messages of a streamed answer: [flags, payload] each. */
function envelopes(body: Buffer): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let at = 0; at < body.length; ) {
    const length = body.readUInt32BE(at + 1);
    out.push([body[at] as number, body.subarray(at + 5, at + 5 + length)]);
    at += 5 + length;
  }
  return out;
}

describe("the Connect and gRPC-Web server", () => {
  it("ends a call whose deadline passes with DEADLINE_EXCEEDED, its method told through the signal", async () => {
    let aborted = false;
    const url = await serve({
      infer: (_request, { signal }) =>
        new Promise((_resolve, reject) =>
          signal.addEventListener("abort", () => {
            aborted = true;
            reject(new CancelledError());
          }),
        ),
    });
    const connect = await fetch(`${url}/Infer`, {
      method: "POST",
      headers: { "content-type": "application/proto", "connect-timeout-ms": "30" },
      body: infer,
    });
    expect(connect.status).toBe(504);
    expect(await connect.json()).toEqual({
      code: "deadline_exceeded",
      message: "the call's deadline (connect-timeout-ms) passed",
    });
    expect(aborted).toBe(true);
    const web = await fetch(`${url}/Infer`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "grpc-timeout": "30m" },
      body: Buffer.concat([Buffer.from([0, 0, 0, 0, infer.length]), infer]),
    });
    const [[flags, trailers] = [0, Buffer.alloc(0)]] = envelopes(
      Buffer.from(await web.arrayBuffer()),
    );
    expect(flags).toBe(0x80);
    expect(trailers.toString()).toMatch(/grpc-status: 4\r\n/);
  });

  it("gzips an answer of 1 KiB or more for a client that accepts it, and only then", async () => {
    const big = create(BatchResultsSchema, {
      batchId: "b",
      results: [{ requestId: "r", output: Array.from({ length: 1000 }, (_, i) => i % 7) }],
    });
    const url = await serve({ infer: async () => big });
    const plain = await fetch(`${url}/Infer`, {
      method: "POST",
      headers: { "content-type": "application/proto", "accept-encoding": "identity" },
      body: infer,
    });
    expect(plain.headers.get("content-encoding")).toBeNull();
    const expected = Buffer.from(await plain.arrayBuffer());
    // Node's fetch inflates by itself; a raw request shows the bytes sent.
    const zipped = await new Promise<{ encoding: string | undefined; body: Buffer }>((resolve) => {
      const headers = { "content-type": "application/proto", "accept-encoding": "gzip" };
      const sent = request(new URL(`${url}/Infer`), { method: "POST", headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ encoding: res.headers["content-encoding"], body: Buffer.concat(chunks) }),
        );
      });
      sent.end(infer);
    });
    expect(zipped.encoding).toBe("gzip");
    expect(gunzipSync(zipped.body)).toEqual(expected);
  });

  it("ends a Connect stream with its end-of-stream message, the error in it when the method fails", async () => {
    const status = create(BatchStatusSchema, { batchId: "b", status: "processing" });
    const url = await serve({
      watchBatch: async function* (request) {
        if (request.batchId === "missing") throw new BatchNotFoundError("missing");
        yield status;
      },
    });
    const request = (batchId: string) => {
      const message = toBinary(
        GetBatchStatusRequestSchema,
        create(GetBatchStatusRequestSchema, { batchId }),
      );
      return Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
    };
    const ok = await fetch(`${url}/WatchBatch`, {
      method: "POST",
      headers: { "content-type": "application/connect+proto" },
      body: request("b"),
    });
    expect(ok.status).toBe(200);
    const frames = envelopes(Buffer.from(await ok.arrayBuffer()));
    expect(frames.map(([flags]) => flags)).toEqual([0, 2]);
    expect(JSON.parse(frames[1]?.[1].toString() ?? "")).toEqual({});
    const failed = await fetch(`${url}/WatchBatch`, {
      method: "POST",
      headers: { "content-type": "application/connect+proto" },
      body: request("missing"),
    });
    expect(failed.status).toBe(200);
    const [[flags, end] = [0, Buffer.alloc(0)]] = envelopes(
      Buffer.from(await failed.arrayBuffer()),
    );
    expect(flags).toBe(2);
    expect(JSON.parse(end.toString())).toEqual({
      error: { code: "not_found", message: 'batch "missing" not found' },
    });
  });

  it("refuses a GET with 405, a content type the method does not take with 415, and an unknown method with 404", async () => {
    const url = await serve({});
    const get = await fetch(`${url}/Infer`);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    const stream = await fetch(`${url}/Infer`, {
      method: "POST",
      headers: { "content-type": "application/connect+proto" },
      body: infer,
    });
    expect(stream.status).toBe(415);
    expect(stream.headers.get("accept-post")).toBe(
      "application/proto, application/json, application/grpc-web+proto",
    );
    expect((await stream.json()) as object).toMatchObject({ error: "invalid_argument" });
    const unknown = await fetch(`${url}/DropTables`, { method: "POST", body: "{}" });
    expect(unknown.status).toBe(404);
  });
});
