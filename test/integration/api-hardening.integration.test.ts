/**
 * The API as an attacker and a careless client meet it: keys checked before any body is read,
 * bodies that never end, floods, malformed protobuf and JSON on every protocol, oversized ids,
 * metadata and headers, and readiness without a required model. Raw HTTP and HTTP/2 are used where
 * a well-behaved client library could not send the request at all.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { connect as http2Connect } from "node:http2";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetBatchStatusRequestSchema } from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { grpcServiceDefinition } from "../../src/api/grpc-services.js";
import type { RunningServer } from "../../src/server.js";
import { createTestModelRepo, type TestModelRepo } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const KEY = "hardening-key";
const SERVICE = "/batchprocessor.v1.BatchProcessorService";
let repo: TestModelRepo;
let server: RunningServer;
let base: string;

function start(env: Record<string, string>): Promise<RunningServer> {
  return startTestServer(repo.dir, { API_KEYS: KEY, MAX_REQUEST_BYTES: "65536", ...env });
}

beforeAll(async () => {
  repo = createTestModelRepo({ dense: false });
  server = await start({ REQUEST_TIMEOUT_MS: "1500" });
  base = `http://127.0.0.1:${server.apiPort}`;
});
afterAll(async () => {
  await server.close();
  repo.cleanup();
});

/** A request whose body is sent in part; `finish` sends the rest. */
function openRequest(
  port: number,
  path: string,
  headers: Record<string, string>,
  first: string,
): {
  answer: Promise<{ response: IncomingMessage; text: string }>;
  finish: (rest: string) => void;
  drop: () => void;
} {
  const req = httpRequest({ host: "127.0.0.1", port, path, method: "POST", headers });
  const answer = new Promise<{ response: IncomingMessage; text: string }>((resolve, reject) => {
    req.on("error", reject);
    req.on("response", (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (c: Buffer) => chunks.push(c));
      response.on("end", () => resolve({ response, text: Buffer.concat(chunks).toString() }));
    });
  });
  req.write(first);
  return { answer, finish: (rest) => req.end(rest), drop: () => req.destroy() };
}

/** A gRPC-Web message or trailer frame. */
function envelope(flags: number, data: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

/** The grpc-status and grpc-message of a gRPC-Web answer (trailers in the body, or headers). */
function grpcWebStatus(response: Response, body: Buffer): { status: string; message: string } {
  const fromHeaders = response.headers.get("grpc-status");
  if (fromHeaders !== null)
    return {
      status: fromHeaders,
      message: decodeURIComponent(response.headers.get("grpc-message") ?? ""),
    };
  let at = 0;
  while (at + 5 <= body.length) {
    const flags = body[at] as number;
    const length = body.readUInt32BE(at + 1);
    const frame = body.subarray(at + 5, at + 5 + length).toString();
    if (flags & 0x80) {
      const fields = Object.fromEntries(
        frame
          .split("\r\n")
          .filter((l) => l.includes(":"))
          .map((l) => [l.slice(0, l.indexOf(":")).trim(), l.slice(l.indexOf(":") + 1).trim()]),
      );
      return {
        status: fields["grpc-status"] ?? "",
        message: decodeURIComponent(fields["grpc-message"] ?? ""),
      };
    }
    at += 5 + length;
  }
  throw new Error("no gRPC-Web trailers");
}

/** A native gRPC call from raw HTTP/2: headers, then `body` (optionally left open). */
function rawGrpc(
  port: number,
  method: string,
  headers: Record<string, string>,
  body: Buffer,
  endStream = true,
): Promise<{ status: string | undefined; message: string | undefined }> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": `${SERVICE}/${method}`,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let answered: Record<string, unknown> = {};
    stream.on("response", (h) => {
      answered = { ...answered, ...h };
    });
    stream.on("trailers", (h) => {
      answered = { ...answered, ...h };
    });
    stream.resume();
    // Settled by the status (trailers, or headers of a trailers-only answer), not by the stream's
    // end: a client that never ends its message never sees the stream close.
    const settle = () => {
      if (answered["grpc-status"] === undefined) return;
      session.destroy();
      resolve({
        status: answered["grpc-status"] as string,
        message:
          answered["grpc-message"] === undefined
            ? undefined
            : decodeURIComponent(answered["grpc-message"] as string),
      });
    };
    stream.on("response", settle);
    stream.on("trailers", settle);
    if (endStream) stream.end(body);
    else stream.write(body);
  });
}

describe("a key is checked before any body is read", () => {
  it("on REST, Connect and gRPC-Web: a body that never ends still gets 401 at once", async () => {
    const cases: [string, Record<string, string>][] = [
      ["/api/batch-processor/submit", { "content-type": "application/json" }],
      [`${SERVICE}/SubmitBatch`, { "content-type": "application/json" }],
      [`${SERVICE}/SubmitBatch`, { "content-type": "application/grpc-web+proto" }],
    ];
    for (const [path, headers] of cases) {
      const { response, text } = await openRequest(
        server.apiPort,
        path,
        { ...headers, "content-length": "100000" },
        '{"data": [',
      ).answer;
      if (headers["content-type"]?.startsWith("application/grpc-web")) {
        expect(`grpc-status:${response.headers["grpc-status"] ?? ""} ${text}`).toMatch(
          /grpc-status: ?16\b/,
        );
      } else {
        expect(response.statusCode).toBe(401);
        expect(JSON.parse(text)).toMatchObject({ message: expect.stringMatching(/API key/) });
      }
      expect(response.headers.connection).toBe("close");
    }
  });

  it("on native gRPC: a message that never ends still gets UNAUTHENTICATED at once", async () => {
    const answer = await rawGrpc(
      server.grpcPort,
      "SubmitBatch",
      {},
      envelope(0, Buffer.alloc(10)).subarray(0, 8),
      false,
    );
    expect(answer.status).toBe("16");
  });
});

describe("timeouts", () => {
  it("ends a request whose body does not arrive within REQUEST_TIMEOUT_MS", async () => {
    const { response } = await openRequest(
      server.apiPort,
      "/api/batch-processor/submit",
      { "x-api-key": KEY, "content-type": "application/json", "content-length": "1000" },
      '{"data": [',
    ).answer;
    expect(response.statusCode).toBe(408);
  });
});

describe("malformed requests are the client's fault on every protocol", () => {
  const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);

  it("answers malformed protobuf on native gRPC with INVALID_ARGUMENT", async () => {
    const answer = await rawGrpc(
      server.grpcPort,
      "SubmitBatch",
      { "x-api-key": KEY },
      envelope(0, garbage),
    );
    expect(answer.status).toBe("3");
    expect(answer.message).toMatch(/^request: is not a valid protobuf message/);
  });

  it("answers malformed protobuf on Connect and gRPC-Web with INVALID_ARGUMENT", async () => {
    const connect = await fetch(`${base}${SERVICE}/GetBatchStatus`, {
      method: "POST",
      headers: { "x-api-key": KEY, "content-type": "application/proto" },
      body: garbage,
    });
    expect(connect.status).toBe(400);
    expect(await connect.json()).toMatchObject({ code: "invalid_argument" });
    const web = await fetch(`${base}${SERVICE}/SubmitBatch`, {
      method: "POST",
      headers: { "x-api-key": KEY, "content-type": "application/grpc-web+proto" },
      body: envelope(0, garbage),
    });
    const status = grpcWebStatus(web, Buffer.from(await web.arrayBuffer()));
    expect(status.status).toBe("3");
    expect(status.message).toMatch(/^request: is not a valid protobuf message/);
  });

  it.each([
    ['{"data": [{"input": [1, "abc"]}]}', 'data[0].input[1]: expected a number, got "abc"'],
    ['{"data": [1]}', "data[0]: expected an object, got 1"],
    ['{"data": [{"inpt": [1]}]}', 'data[0].inpt: unknown field, did you mean "input"?'],
    ['{"data": [{"input": [1, 1e39]}]}', "data[0].input[1]: 1e+39 is outside the float32 range"],
  ])("names the field on Connect JSON as on REST: %s", async (body, message) => {
    for (const path of [`${SERVICE}/SubmitBatch`, "/api/batch-processor/submit"]) {
      const response = await fetch(`${base}${path}`, {
        method: "POST",
        headers: { "x-api-key": KEY, "content-type": "application/json" },
        body,
      });
      expect(response.status).toBe(400);
      const answer = (await response.json()) as { message: string };
      expect(answer.message).toBe(message);
    }
  });

  it("rejects an oversized batch_id on a lookup without echoing it, on every protocol", async () => {
    // A path holds what fits in the request line (Node answers 431 past 16 KiB); a body more.
    const rest = await fetch(`${base}/api/batch-processor/status/${"x".repeat(10_000)}`, {
      headers: { "x-api-key": KEY },
    });
    expect(rest.status).toBe(400);
    const restText = await rest.text();
    expect(restText.length).toBeLessThan(300);
    expect(JSON.parse(restText).message).toBe(
      "batch_id: must be at most 128 characters, got 10000",
    );
    const id = "x".repeat(50_000);
    const connect = await fetch(`${base}${SERVICE}/GetBatchStatus`, {
      method: "POST",
      headers: { "x-api-key": KEY, "content-type": "application/json" },
      body: JSON.stringify({ batch_id: id }),
    });
    expect(connect.status).toBe(400);
    expect(((await connect.json()) as { message: string }).message).toBe(
      "batch_id: must be at most 128 characters, got 50000",
    );
    const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(), "S");
    const client = new Client(
      `127.0.0.1:${server.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as unknown as Record<string, (...a: unknown[]) => void>;
    const metadata = new grpc.Metadata();
    metadata.set("x-api-key", KEY);
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      client.getBatchStatus?.(
        create(GetBatchStatusRequestSchema, { batchId: id }),
        metadata,
        (e: grpc.ServiceError) => resolve(e),
      ),
    );
    (client as unknown as grpc.Client).close();
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toBe("batch_id: must be at most 128 characters, got 50000");
  });

  it("rejects metadata over its limits on REST and gRPC", async () => {
    const metadata = Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [`k${i}`, "v".repeat(1000)]),
    );
    const rest = await fetch(`${base}/api/batch-processor/submit`, {
      method: "POST",
      headers: { "x-api-key": KEY },
      body: JSON.stringify({ data: [{ input: [1] }], metadata }),
    });
    expect(rest.status).toBe(400);
    expect(((await rest.json()) as { message: string }).message).toMatch(
      /^metadata: is larger than the 16384 bytes/,
    );
  });

  it("refuses gRPC request headers over 16 KiB with RESOURCE_EXHAUSTED", async () => {
    const answer = await rawGrpc(
      server.grpcPort,
      "GetConfig",
      { "x-api-key": KEY, "x-padding": "p".repeat(20_000) },
      envelope(0, new Uint8Array(0)),
    );
    expect(answer.status).toBe("8");
    expect(answer.message).toMatch(/^request headers \(\d+ bytes\) is larger than the 16384 bytes/);
  });
});

describe("load shedding", () => {
  it("refuses calls past MAX_REQUESTS_IN_FLIGHT with 429 and Retry-After while probes stay fast", async () => {
    const small = await start({ MAX_REQUESTS_IN_FLIGHT: "1" });
    try {
      // An admitted request whose body has not all arrived holds the one slot.
      const body = '{"data": [{"input": [1, 2, 3]}]}';
      const held = openRequest(
        small.apiPort,
        "/api/batch-processor/infer",
        {
          "x-api-key": KEY,
          "content-type": "application/json",
          "content-length": String(body.length),
        },
        body.slice(0, 20),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      const refused = await fetch(`http://127.0.0.1:${small.apiPort}/api/batch-processor/config`, {
        headers: { "x-api-key": KEY },
      });
      expect(refused.status).toBe(429);
      expect(refused.headers.get("retry-after")).toBe("1");
      expect(((await refused.json()) as { error: string }).error).toBe("resource_exhausted");
      const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(), "S");
      const client = new Client(
        `127.0.0.1:${small.grpcPort}`,
        grpc.credentials.createInsecure(),
      ) as unknown as Record<string, (...a: unknown[]) => void>;
      const metadata = new grpc.Metadata();
      metadata.set("x-api-key", KEY);
      const error = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.getConfig?.({}, metadata, (e: grpc.ServiceError | null) => resolve(e)),
      );
      (client as unknown as grpc.Client).close();
      expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect((await fetch(`http://127.0.0.1:${small.apiPort}/health`)).status).toBe(200);
      // The held request completes once its body arrives, and frees its slot.
      held.finish(body.slice(20));
      expect((await held.answer).response.statusCode).toBe(200);
      const after = await fetch(`http://127.0.0.1:${small.apiPort}/api/batch-processor/config`, {
        headers: { "x-api-key": KEY },
      });
      expect(after.status).toBe(200);
    } finally {
      await small.close();
    }
  });

  it("frees the place of a call its client drops before sending the whole message", async () => {
    const small = await start({ MAX_REQUESTS_IN_FLIGHT: "2" });
    const session = http2Connect(`http://127.0.0.1:${small.grpcPort}`);
    try {
      // Five calls admitted from their headers, then reset by the client with no message sent.
      for (let i = 0; i < 5; i++) {
        const stream = session.request({
          ":method": "POST",
          ":path": `${SERVICE}/GetConfig`,
          "content-type": "application/grpc",
          te: "trailers",
          "x-api-key": KEY,
        });
        stream.on("error", () => {});
        await new Promise((resolve) => setTimeout(resolve, 20));
        stream.close(8); // NGHTTP2_CANCEL
        await new Promise((resolve) => stream.once("close", resolve));
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      const answer = await rawGrpc(
        small.grpcPort,
        "GetConfig",
        { "x-api-key": KEY },
        envelope(0, new Uint8Array(0)),
      );
      expect(answer.status).toBe("0");
      // The same over HTTP: requests dropped halfway through their bodies.
      for (const path of ["/api/batch-processor/infer", `${SERVICE}/Infer`]) {
        const body = '{"data": [{"input": [1, 2, 3]}]}';
        for (let i = 0; i < 3; i++) {
          const dropped = openRequest(
            small.apiPort,
            path,
            {
              "x-api-key": KEY,
              "content-type": "application/json",
              "content-length": String(body.length),
            },
            body.slice(0, 10),
          );
          dropped.answer.catch(() => {});
          await new Promise((resolve) => setTimeout(resolve, 20));
          dropped.drop();
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      const config = await fetch(`http://127.0.0.1:${small.apiPort}/api/batch-processor/config`, {
        headers: { "x-api-key": KEY },
      });
      expect(config.status).toBe(200);
    } finally {
      session.close();
      await small.close();
    }
  });
});

describe("readiness", () => {
  it("answers /ready 503 while a required model is unavailable, naming it and no server path", async () => {
    const notReady = await start({ REQUIRED_MODELS: "default,missing" });
    try {
      const ready = await fetch(`http://127.0.0.1:${notReady.apiPort}/ready`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { status: string; reasons: string[] };
      expect(body).toEqual({
        status: "not_ready",
        reasons: ['model "missing" is not in the model repository'],
      });
      expect(JSON.stringify(body)).not.toContain(repo.dir);
      expect((await fetch(`http://127.0.0.1:${notReady.apiPort}/health`)).status).toBe(200);
    } finally {
      await notReady.close();
    }
    const none = await start({ REQUIRED_MODELS: "none", MODEL_DIR: repo.dir });
    try {
      expect((await fetch(`http://127.0.0.1:${none.apiPort}/ready`)).status).toBe(200);
    } finally {
      await none.close();
    }
  });
});
