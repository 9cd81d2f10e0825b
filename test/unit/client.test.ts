import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  BatchProcessorService,
  BatchStatusSchema,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { BatchProcessorClient } from "../../src/client/client.js";
import { transportFor } from "../../src/client/index.js";
import { isJobEnded, isTerminal } from "../../src/client/states.js";
import { webTransportFor } from "../../src/client/web.js";
import {
  BATCH_STATUSES,
  isJobEnded as engineJobEnded,
  isTerminal as engineTerminal,
  JOB_STATUSES,
} from "../../src/engine/index.js";

/** A client over an in-memory server whose getBatchStatus fails as `failures` says, then answers. */
function clientFailing(failures: ConnectError[], retries = 5) {
  const calls: number[] = [];
  const transport = createRouterTransport(({ service }) => {
    service(BatchProcessorService, {
      getBatchStatus(request) {
        calls.push(Date.now());
        const failure = failures.shift();
        if (failure !== undefined) throw failure;
        return create(BatchStatusSchema, { batchId: request.batchId, status: "completed" });
      },
      submitBatch(request) {
        return { batchId: request.batchId, status: "queued", requestCount: request.data.length };
      },
    });
  });
  return { client: new BatchProcessorClient({ transport, retries, maxRetryDelayMs: 20 }), calls };
}

const refused = (code: Code, retryAfter?: string) =>
  new ConnectError(
    "not now",
    code,
    retryAfter === undefined ? undefined : { "retry-after": retryAfter },
  );

describe("BatchProcessorClient", () => {
  it("retries UNAVAILABLE and RESOURCE_EXHAUSTED, then answers", async () => {
    const { client, calls } = clientFailing([
      refused(Code.Unavailable),
      refused(Code.ResourceExhausted, "1"),
    ]);
    expect((await client.status("b1")).status).toBe("completed");
    expect(calls).toHaveLength(3);
  });

  it("gives up after its retries, and never retries other errors", async () => {
    const busy = clientFailing(
      [1, 2, 3].map(() => refused(Code.Unavailable)),
      2,
    );
    await expect(busy.client.status("b1")).rejects.toMatchObject({ code: Code.Unavailable });
    expect(busy.calls).toHaveLength(3);
    const missing = clientFailing([refused(Code.NotFound)]);
    await expect(missing.client.status("b1")).rejects.toMatchObject({ code: Code.NotFound });
    expect(missing.calls).toHaveLength(1);
  });

  it("gives a submit a batch id of its own unless one is given, so a retry cannot store twice", async () => {
    const { client } = clientFailing([]);
    const made = await client.submit({ data: [{ input: [1] }] });
    expect(made.batchId).toMatch(/^batch_[0-9a-f-]{36}$/);
    expect((await client.submit({ data: [{ input: [1] }], batchId: "mine" })).batchId).toBe("mine");
  });

  it("picks the protocol by the URL's scheme and refuses others", () => {
    expect(() => transportFor({ url: "http://127.0.0.1:8000" })).not.toThrow();
    expect(() => transportFor({ url: "grpc://127.0.0.1:50051" })).not.toThrow();
    expect(() => transportFor({ url: "ftp://x" })).toThrow(/unsupported URL scheme "ftp:"/);
    expect(() => transportFor({ url: "localhost" })).toThrow(/unsupported URL scheme|not a URL/);
  });

  it("stops watching at the statuses the server's state machine never leaves", () => {
    for (const status of [...BATCH_STATUSES, "unknown"])
      expect(isTerminal(status), status).toBe(engineTerminal(status));
    for (const status of [...JOB_STATUSES, "unknown"])
      expect(isJobEnded(status), status).toBe(engineJobEnded(status));
  });

  it("builds a browser transport for http(s) URLs only", () => {
    expect(webTransportFor({ url: "https://example.test:8000/" })).toBeDefined();
    expect(() => webTransportFor({ url: "grpc://example.test:50051" })).toThrow(
      /unsupported URL scheme "grpc:" in a browser/,
    );
  });
});
