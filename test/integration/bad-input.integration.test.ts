/**
 * A bad-input pass over REST, Connect and native gRPC: malformed JSON and protobuf, wrong types,
 * out-of-range numbers, oversized fields, path and query abuse, header abuse. Every answer must be
 * a client error (4xx, or a gRPC code other than INTERNAL/UNKNOWN) with a message that says what
 * is wrong, and the server must be healthy and serving afterwards, with no internal error counted.
 */

import { request as httpRequest } from "node:http";
import { connect as http2Connect } from "node:http2";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server.js";
import { createTestModelRepo, type TestModelRepo } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const KEY = "bad-input-key";
const SERVICE = "/batchprocessor.v1.BatchProcessorService";
let repo: TestModelRepo;
let server: RunningServer;

beforeAll(async () => {
  repo = createTestModelRepo({ dense: false });
  server = await startTestServer(repo.dir, { API_KEYS: KEY, MAX_REQUEST_BYTES: "262144" });
});
afterAll(async () => {
  await server.close();
  repo.cleanup();
});

interface Answer {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

/** A raw HTTP/1.1 request: any method, path, headers and body bytes. */
function raw(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port: server.apiPort, method, path, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          let parsed: { error?: string; code?: string; message?: string } = {};
          try {
            parsed = JSON.parse(text);
          } catch {}
          resolve({
            status: res.statusCode ?? 0,
            code: parsed.error ?? parsed.code ?? "",
            message: parsed.message ?? text,
          });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** A native gRPC call with a raw message body (already framed or not). */
function grpcRaw(
  method: string,
  frame: Buffer,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(`http://127.0.0.1:${server.grpcPort}`);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": `${SERVICE}/${method}`,
      "content-type": "application/grpc",
      te: "trailers",
      "x-api-key": KEY,
      ...headers,
    });
    const seen: Record<string, unknown> = {};
    const settle = (h: Record<string, unknown>) => {
      Object.assign(seen, h);
      if (seen["grpc-status"] === undefined) return;
      session.destroy();
      resolve({
        status: 200,
        code: String(seen["grpc-status"]),
        message: decodeURIComponent(String(seen["grpc-message"] ?? "")),
      });
    };
    stream.on("response", settle);
    stream.on("trailers", settle);
    stream.resume();
    stream.end(frame);
  });
}

function frame(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

const json = { "content-type": "application/json", "x-api-key": KEY };
const restPost = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
  raw("POST", `/api/batch-processor/${path}`, { ...json, ...headers }, body);
const restGet = (path: string, headers: Record<string, string> = {}) =>
  raw("GET", path, { "x-api-key": KEY, ...headers });
const connectJson = (method: string, body: string, headers: Record<string, string> = {}) =>
  raw("POST", `${SERVICE}/${method}`, { ...json, ...headers }, body);
const connectProto = (method: string, body: Buffer, headers: Record<string, string> = {}) =>
  raw(
    "POST",
    `${SERVICE}/${method}`,
    { "content-type": "application/proto", "x-api-key": KEY, ...headers },
    body,
  );

const item = (input: unknown) => JSON.stringify({ data: [{ input }] });
const deep = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;

/** [name, call, what the message must match]: every call must end as a client error. */
const JSON_BODIES: [string, string, RegExp][] = [
  ["truncated JSON", '{"data": [', /^body: malformed JSON/],
  ["not JSON", "hello", /^body: malformed JSON/],
  ["a JSON array", "[1, 2]", /^body: expected a JSON object/],
  ["a JSON string", '"data"', /^body: expected a JSON object/],
  ["a JSON number", "42", /^body: expected a JSON object/],
  ["data not an array", '{"data": 5}', /^data: expected an array/],
  ["data an object", '{"data": {"input": [1]}}', /^data: expected an array/],
  ["an item a number", '{"data": [1]}', /^data\[0\]: expected an object, got 1$/],
  ["an item a string", '{"data": ["x"]}', /^data\[0\]: expected an object/],
  ["an item null", '{"data": [null]}', /^data\[0\]: /],
  ["input a string", item("1,2,3"), /^data\[0\]\.input: expected an array/],
  ["input an object", item({ a: 1 }), /^data\[0\]\.input: expected an array/],
  [
    "a word among the numbers",
    item([1, "abc"]),
    /^data\[0\]\.input\[1\]: expected a number, got "abc"$/,
  ],
  [
    "a boolean among the numbers",
    item([true]),
    /^data\[0\]\.input\[0\]: expected a number, got true$/,
  ],
  ["a null among the numbers", item([1, null]), /^data\[0\]\.input\[1\]: /],
  ["a nested array among the numbers", item([[1]]), /^data\[0\]\.input\[0\]: expected a number/],
  [
    "a number beyond float32",
    '{"data": [{"input": [1e39]}]}',
    /^data\[0\]\.input\[0\]: 1e\+39 is outside the float32 range$/,
  ],
  [
    "a negative number beyond float32",
    '{"data": [{"input": [-1e300]}]}',
    /outside the float32 range$/,
  ],
  ["NaN as a string", item(["NaN"]), /^data\[0\]\.input\[0\]: expected a finite number, got NaN$/],
  ["Infinity as a string", item(["Infinity"]), /^data\[0\]\.input\[0\]: expected a finite number/],
  ["an empty input", item([]), /^data\[0\]\.input: must contain at least 1 number$/],
  ["no data", "{}", /^data: must contain at least 1 item$/],
  ["an empty data", '{"data": []}', /^data: must contain at least 1 item$/],
  [
    "1001 items",
    JSON.stringify({ data: Array.from({ length: 1001 }, () => ({ input: [1] })) }),
    /^data: must contain at most 1000 items, got 1001$/,
  ],
  [
    "an unknown item field",
    '{"data": [{"inpt": [1]}]}',
    /^data\[0\]\.inpt: unknown field, did you mean "input"\?$/,
  ],
  [
    "an unknown top field",
    '{"data": [{"input": [1]}], "priorty": "high"}',
    /^priorty: unknown field, did you mean "priority"\?$/,
  ],
  [
    "an unrelated unknown field",
    '{"data": [{"input": [1]}], "zzz": 1}',
    /^zzz: unknown field; expected one of/,
  ],
  [
    "a 10k-character unknown field",
    JSON.stringify({ data: [{ input: [1] }], ["k".repeat(10_000)]: 1 }),
    /unknown field/,
  ],
  [
    "shape with a negative dimension",
    '{"data": [{"input": [1], "shape": [-1]}]}',
    /^data\[0\]\.shape\[0\]: expected an integer in 0\.\.4294967295, got -1$/,
  ],
  [
    "shape with a fraction",
    '{"data": [{"input": [1, 2], "shape": [1.5]}]}',
    /^data\[0\]\.shape\[0\]: expected an integer/,
  ],
  [
    "shape not matching the input",
    '{"data": [{"input": [1, 2, 3], "shape": [2, 2]}]}',
    /^data\[0\]\.shape: \[2, 2\] holds 4 numbers but input has 3$/,
  ],
  [
    "shape with a zero",
    '{"data": [{"input": [1], "shape": [0]}]}',
    /^data\[0\]\.shape\[0\]: expected a positive integer, got 0$/,
  ],
  [
    "request_id a number",
    '{"data": [{"input": [1], "request_id": 5}]}',
    /^data\[0\]\.request_id: expected a string, got 5$/,
  ],
  [
    "request_id with a slash",
    '{"data": [{"input": [1], "request_id": "a/b"}]}',
    /^data\[0\]\.request_id: may contain only/,
  ],
  [
    "request_id 200 characters",
    JSON.stringify({ data: [{ input: [1], request_id: "r".repeat(200) }] }),
    /^data\[0\]\.request_id: must be at most 128 characters, got 200$/,
  ],
  [
    "priority a number",
    '{"data": [{"input": [1]}], "priority": 1}',
    /^priority: expected a string, got 1$/,
  ],
  [
    "an unknown priority",
    '{"data": [{"input": [1]}], "priority": "urgent"}',
    /^priority: expected one of critical, high, normal, low, got "urgent"$/,
  ],
  [
    "a 100k-character priority",
    JSON.stringify({ data: [{ input: [1] }], priority: "p".repeat(100_000) }),
    /^priority: expected one of .*\(100000 characters\)$/,
  ],
  [
    "timeout_ms a word",
    '{"data": [{"input": [1]}], "timeout_ms": "soon"}',
    /^timeout_ms: expected an integer in 0\.\.4294967295, got "soon"$/,
  ],
  [
    "timeout_ms negative",
    '{"data": [{"input": [1]}], "timeout_ms": -5}',
    /^timeout_ms: expected an integer in 0\.\.4294967295, got -5$/,
  ],
  [
    "timeout_ms below the range",
    '{"data": [{"input": [1]}], "timeout_ms": 50}',
    /^timeout_ms: expected an integer in 100\.\.300000, got 50$/,
  ],
  [
    "timeout_ms above the range",
    '{"data": [{"input": [1]}], "timeout_ms": 300001}',
    /^timeout_ms: expected an integer in 100\.\.300000/,
  ],
  [
    "timeout_ms beyond uint32",
    '{"data": [{"input": [1]}], "timeout_ms": 1e20}',
    /^timeout_ms: expected an integer in 0\.\.4294967295/,
  ],
  [
    "batch_id an object",
    '{"data": [{"input": [1]}], "batch_id": {}}',
    /^batch_id: expected a string/,
  ],
  [
    "batch_id with spaces",
    '{"data": [{"input": [1]}], "batch_id": "a b"}',
    /^batch_id: may contain only/,
  ],
  [
    "metadata an array",
    '{"data": [{"input": [1]}], "metadata": [1]}',
    /^metadata: expected a JSON object/,
  ],
  [
    "metadata a string",
    '{"data": [{"input": [1]}], "metadata": "x"}',
    /^metadata: expected a JSON object/,
  ],
  [
    "metadata with 65 entries",
    JSON.stringify({
      data: [{ input: [1] }],
      metadata: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i])),
    }),
    /^metadata: has 65 entries; at most 64 are allowed$/,
  ],
  [
    "metadata of 100 KB",
    JSON.stringify({
      data: [{ input: [1] }],
      metadata: { blob: Array.from({ length: 30 }, () => "v".repeat(3000)) },
    }),
    /^metadata: is larger than the 16384 bytes allowed as JSON$/,
  ],
  [
    "metadata nested 20 deep",
    `{"data": [{"input": [1]}], "metadata": {"d": ${deep(20)}}}`,
    /nests deeper than 8 levels$/,
  ],
  [
    "model_id a number",
    '{"data": [{"input": [1]}], "metadata": {"model_id": 7}}',
    /^metadata\.model_id: expected a string$/,
  ],
  ["a JSON nested 5000 deep", `{"data": ${deep(5000)}}`, /^data\[0\]: /],
];

/** The same bodies for Configure. */
const CONFIGURE_BODIES: [string, string, RegExp][] = [
  [
    "max_batch_size 0",
    '{"max_batch_size": 0}',
    /^max_batch_size: must be an integer in 1\.\.4096, got 0$/,
  ],
  [
    "max_batch_size a word",
    '{"max_batch_size": "big"}',
    /^max_batch_size: expected an integer in 0\.\.4294967295, got "big"$/,
  ],
  [
    "max_wait_time_ms negative",
    '{"max_wait_time_ms": -1}',
    /^max_wait_time_ms: must be a number in 0\.\.60000, got -1$/,
  ],
  [
    "enable_dynamic_batching a string",
    '{"enable_dynamic_batching": "yes"}',
    /^enable_dynamic_batching: expected true or false, got "yes"$/,
  ],
  [
    "an unknown priority weight",
    '{"priority_weights": {"urgent": 1}}',
    /^priority_weights\.urgent: is not a priority/,
  ],
  [
    "a weight a word",
    '{"priority_weights": {"high": "x"}}',
    /^priority_weights\.high: expected a number, got "x"$/,
  ],
  [
    "all weights 0",
    '{"priority_weights": {"critical": 0, "high": 0, "normal": 0, "low": 0}}',
    /^priority_weights: must have at least one weight above 0$/,
  ],
  [
    "a latency target below 0",
    '{"priority_latency_ms": {"critical": -5}}',
    /^priority_latency_ms\.critical: must be a number in 0\.\.3600000, got -5$/,
  ],
  [
    "a latency target for an unknown priority",
    '{"priority_latency_ms": {"urgent": 50}}',
    /^priority_latency_ms\.urgent: is not a priority/,
  ],
];

function assertClientError(answer: Answer, message?: RegExp): void {
  expect(answer.status, JSON.stringify(answer)).toBeGreaterThanOrEqual(400);
  expect(answer.status, JSON.stringify(answer)).toBeLessThan(500);
  expect(answer.code).not.toMatch(/internal|unknown/);
  if (message !== undefined) expect(answer.message).toMatch(message);
}

describe("bad input on REST and Connect JSON", () => {
  it.each(JSON_BODIES)("submit with %s", async (_name, body, message) => {
    for (const path of ["submit", "infer"]) assertClientError(await restPost(path, body), message);
    assertClientError(await connectJson("SubmitBatch", body), message);
  });

  it.each(CONFIGURE_BODIES)("configure with %s", async (_name, body, message) => {
    assertClientError(await restPost("configure", body), message);
    assertClientError(await connectJson("Configure", body), message);
  });
});

describe("bad input on paths, queries and headers", () => {
  it.each<[string, () => Promise<Answer>, RegExp | undefined]>([
    [
      "a traversal path",
      () => restGet("/api/batch-processor/status/..%2F..%2Fetc%2Fpasswd"),
      /^batch_id: may contain only/,
    ],
    [
      "a bad percent escape",
      () => restGet("/api/batch-processor/status/%ZZ"),
      /^batch_id: may contain only/,
    ],
    [
      "a NUL byte in the id",
      () => restGet("/api/batch-processor/status/a%00b"),
      /^batch_id: may contain only/,
    ],
    [
      "a unicode id",
      () => restGet("/api/batch-processor/status/%E2%98%83"),
      /^batch_id: may contain only/,
    ],
    [
      "an unknown batch",
      () => restGet("/api/batch-processor/status/nope"),
      /^batch "nope" not found$/,
    ],
    [
      "an unknown route",
      () => restGet("/api/batch-processor/nothing"),
      /^no route "\/api\/batch-processor\/nothing"$/,
    ],
    ["an unknown root path", () => restGet("/etc/passwd"), /^no route/],
    [
      "a wrong method",
      () => raw("PUT", "/api/batch-processor/submit", json, "{}"),
      /is not allowed here; use POST$/,
    ],
    [
      "DELETE on status",
      () => raw("DELETE", "/api/batch-processor/status/x", json),
      /is not allowed here; use GET$/,
    ],
    [
      "limit a word",
      () => restGet("/api/batch-processor/batches?limit=abc"),
      /^limit: expected an integer in 0\.\.4294967295, got "abc"$/,
    ],
    [
      "limit negative",
      () => restGet("/api/batch-processor/batches?limit=-1"),
      /^limit: expected an integer in 0\.\.4294967295, got -1$/,
    ],
    [
      "limit too large",
      () => restGet("/api/batch-processor/batches?limit=5000"),
      /^limit: expected an integer in 1\.\.1000, got 5000$/,
    ],
    [
      "an unknown status filter",
      () => restGet("/api/batch-processor/batches?status=bogus"),
      /^status: expected active, all or one of/,
    ],
    [
      "an unknown query parameter",
      () => restGet("/api/batch-processor/batches?colour=red"),
      /^colour: unknown query parameter/,
    ],
    [
      "a forged page token",
      () => restGet("/api/batch-processor/batches?page_token=bm9wZQ"),
      /^page_token: is not a token this server issued$/,
    ],
    [
      "a page token with slashes",
      () => restGet("/api/batch-processor/batches?page_token=a/b"),
      /^page_token: is not a token/,
    ],
    [
      "an unknown period",
      () => restGet("/api/batch-processor/analytics?period=2d"),
      /^period: expected one of 5m, 15m, 1h, 6h, 24h, got "2d"$/,
    ],
    [
      "a prototype key as period",
      () => restGet("/api/batch-processor/analytics?period=constructor"),
      /^period: expected one of/,
    ],
    [
      "an unknown metric",
      () => restGet("/api/batch-processor/analytics?metrics=throughput,bogus"),
      /^metrics: unknown metric "bogus"/,
    ],
    [
      "partial a word",
      () => restGet("/api/batch-processor/results/x?partial=maybe"),
      /^partial: expected true or false, got "maybe"$/,
    ],
    [
      "a 10k query string",
      () => restGet(`/api/batch-processor/batches?status=${"s".repeat(10_000)}`),
      /\(10000 characters\)$/,
    ],
    ["no key", () => raw("GET", "/api/batch-processor/batches", {}), /^missing or unknown API key/],
    [
      "a wrong key",
      () => restGet("/api/batch-processor/batches", { "x-api-key": "nope" }),
      /^unknown API key$/,
    ],
    [
      "a malformed bearer",
      () => raw("GET", "/api/batch-processor/batches", { authorization: "Bearer" }),
      /^missing or unknown API key/,
    ],
    [
      "a basic authorization",
      () => raw("GET", "/api/batch-processor/batches", { authorization: "Basic a2V5" }),
      /^missing or unknown API key/,
    ],
    [
      "an unknown content-encoding",
      () => restPost("submit", item([1]), { "content-encoding": "zstd" }),
      /^content-encoding: unsupported encoding "zstd"$/,
    ],
    [
      "gzip declared, plain sent",
      () => restPost("submit", item([1]), { "content-encoding": "gzip" }),
      /^body: could not be inflated/,
    ],
    [
      "a gzip bomb",
      () =>
        restPost("submit", gzipSync(Buffer.alloc(2_000_000, 32)), { "content-encoding": "gzip" }),
      /^inflated request body is larger than the 262144 bytes this server accepts \(MAX_REQUEST_BYTES\)$/,
    ],
    [
      "a body over the limit",
      () => restPost("submit", JSON.stringify({ data: [{ input: Array(150_000).fill(1) }] })),
      /^request body is larger than the 262144 bytes/,
    ],
    [
      "a multipart body",
      () => restPost("submit", "--x", { "content-type": "multipart/form-data; boundary=x" }),
      /^content-type: expected application\/json, got "multipart\/form-data"$/,
    ],
    [
      "headers over 16 KiB",
      () => restGet("/api/batch-processor/batches", { "x-padding": "p".repeat(20_000) }),
      undefined,
    ],
    [
      "an unknown Connect content type",
      () =>
        raw(
          "POST",
          `${SERVICE}/GetConfig`,
          { "content-type": "text/plain", "x-api-key": KEY },
          "{}",
        ),
      undefined,
    ],
    [
      "a GET on a Connect path",
      () => raw("GET", `${SERVICE}/GetConfig`, { "x-api-key": KEY }),
      undefined,
    ],
    [
      "a Connect timeout header of garbage",
      () => connectJson("GetConfig", "{}", { "connect-timeout-ms": "soon" }),
      undefined,
    ],
    ["an unknown Connect method", () => connectJson("DropTables", "{}"), /^no route/],
    [
      "Connect JSON that is not an object",
      () => connectJson("GetBatchStatus", "[1]"),
      /^body: expected a JSON object/,
    ],
    [
      "Connect JSON with a wrong type",
      () => connectJson("GetBatchStatus", '{"batch_id": 5}'),
      /^batch_id: expected a string, got 5$/,
    ],
    [
      "Connect JSON with a 5000-deep nesting",
      () => connectJson("SubmitBatch", `{"data": ${deep(5000)}}`),
      /^data\[0\]: /,
    ],
  ])("%s", async (_name, call, message) => {
    assertClientError(await call(), message);
  });
});

/** Protobuf bytes that are not a valid message in some way. */
const PROTO_BODIES: [string, Buffer][] = [
  ["random bytes", Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x13, 0x37])],
  ["a truncated varint", Buffer.from([0x08, 0xff])],
  ["a length past the end", Buffer.from([0x0a, 0x7f, 0x01])],
  [
    "a 10-byte varint overflow",
    Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
  ],
  ["a group start without end", Buffer.from([0x0b])],
  ["wire type 7", Buffer.from([0x0f, 0x00])],
  ["field number 0", Buffer.from([0x00, 0x00])],
  ["invalid UTF-8 in a string", Buffer.from([0x1a, 0x02, 0xff, 0xfe])],
  ["an item with a truncated input", Buffer.from([0x0a, 0x05, 0x0a, 0x08, 0x00, 0x00, 0x80])],
  [
    "an item whose input is not whole floats",
    Buffer.from([0x0a, 0x05, 0x0a, 0x03, 0x01, 0x02, 0x03]),
  ],
];

describe("bad input on protobuf protocols", () => {
  it.each(PROTO_BODIES)("submit with %s", async (_name, body) => {
    for (const answer of [
      await grpcRaw("SubmitBatch", frame(body)),
      await grpcRaw("Infer", frame(body)),
    ]) {
      expect(answer.code, JSON.stringify(answer)).toBe("3");
      expect(answer.message).toMatch(/^(request|data\[\d+\]\.input): /);
    }
    assertClientError(await connectProto("SubmitBatch", body), /^request: is not a valid protobuf/);
  });

  it.each<[string, Buffer, string, RegExp]>([
    ["a frame shorter than its header", Buffer.from([0x00, 0x00]), "13", /./],
    [
      "a frame longer than it says",
      Buffer.concat([frame(Buffer.alloc(0)), Buffer.from([1, 2])]),
      "",
      /./,
    ],
    ["a message over the size limit", frame(Buffer.alloc(300_000)), "8", /./],
    [
      "a float input of NaN bits",
      frame(Buffer.from([0x0a, 0x06, 0x0a, 0x04, 0x00, 0x00, 0xc0, 0x7f])),
      "3",
      /^data\[0\]\.input\[0\]: expected a finite number, got NaN$/,
    ],
    [
      "a float input of infinity bits",
      frame(Buffer.from([0x0a, 0x06, 0x0a, 0x04, 0x00, 0x00, 0x80, 0x7f])),
      "3",
      /^data\[0\]\.input\[0\]: expected a finite number, got Infinity$/,
    ],
    [
      "a batch_id over 128 characters",
      frame(
        Buffer.concat([
          Buffer.from([0x0a, 0x06, 0x0a, 0x04, 0, 0, 0x80, 0x3f, 0x1a, 0xc8, 0x01]),
          Buffer.alloc(200, 0x61),
        ]),
      ),
      "3",
      /^batch_id: must be at most 128 characters, got 200$/,
    ],
    [
      "metadata far over its limit",
      frame(
        Buffer.concat([
          Buffer.from([0x0a, 0x06, 0x0a, 0x04, 0, 0, 0x80, 0x3f, 0x2a, 0x80, 0x80, 0x04]),
          Buffer.alloc(65_536),
        ]),
      ),
      "3",
      /^metadata: is larger than the 16384 bytes/,
    ],
    ["an empty message", frame(Buffer.alloc(0)), "3", /^data: must contain at least 1 item$/],
    ["no message at all", Buffer.alloc(0), "12", /^Received no request message/],
    [
      "a compressed flag with no compression",
      Buffer.from([0x01, 0, 0, 0, 0]),
      "3",
      /^data: must contain at least 1 item$/,
    ],
  ])("gRPC with %s", async (_name, body, code, message) => {
    const answer = await grpcRaw("SubmitBatch", body);
    expect(answer.code, JSON.stringify(answer)).not.toMatch(/^(2|13)$/);
    if (code !== "")
      expect(answer.code, JSON.stringify(answer)).toBe(code === "13" ? answer.code : code);
    expect(answer.message).toMatch(message);
  });
});

describe("after the pass", () => {
  it("is healthy, serves a valid request on every protocol, and counted no internal error", async () => {
    const health = await raw("GET", "/health", {});
    expect(health.status).toBe(200);
    const rest = await restPost("infer", item([1, 2, 3]));
    expect(rest.status).toBe(200);
    const connect = await connectJson("Infer", item([1, 2, 3]));
    expect(connect.status).toBe(200);
    const grpc = await grpcRaw("GetConfig", frame(Buffer.alloc(0)));
    expect(grpc.code).toBe("0");
    const metrics = await raw("GET", "/metrics", {});
    expect(metrics.message).toMatch(/batch_processor_requests_total/);
    expect(metrics.message).not.toMatch(/code="(internal|unknown)"/);
  });
});
