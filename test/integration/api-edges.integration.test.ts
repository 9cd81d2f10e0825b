/**
 * The edges of the API: REST specifics (malformed bodies, size limits, compression, SSE,
 * Retry-After, health and readiness), generated keys, gRPC health, and the promise that no
 * protocol ever shows a client the message of an internal error.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { connect } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Authenticator, createAuthenticator } from "../../src/api/auth.js";
import {
  CONNECTION_WINDOW_BYTES,
  STREAM_WINDOW_BYTES,
  startGrpcServer,
} from "../../src/api/grpc-server.js";
import { startHttpServer } from "../../src/api/http-server.js";
import { createOverloadGuard } from "../../src/api/overload.js";
import type { RunningServer } from "../../src/server.js";
import type { BatchProcessorServiceImpl } from "../../src/service/batch-processor-service.js";
import { SqliteJobStore } from "../../src/store/sqlite-job-store.js";
import {
  connectClient,
  grpcClient,
  grpcWebClient,
  type ProtocolClient,
  restClient,
} from "../fixtures/api-clients.js";
import { createTestModelRepo, type TestModelRepo } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const KEY = "edge-key";
let repo: TestModelRepo;
let server: RunningServer;
let base: string;

function start(env: Record<string, string>, logLines?: string[]): Promise<RunningServer> {
  return startTestServer(repo.dir, env, logLines);
}

beforeAll(async () => {
  repo = createTestModelRepo({ dense: false });
  server = await start({ API_KEYS: KEY, MAX_REQUEST_BYTES: "65536" });
  base = `http://127.0.0.1:${server.apiPort}`;
});
afterAll(async () => {
  await server.close();
  repo.cleanup();
});

const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, {
    method: "POST",
    body,
    headers: { "x-api-key": KEY, "content-type": "application/json", ...headers },
  });

describe("REST edges", () => {
  it("serves the v1 API's health JSON and readiness without a key", async () => {
    const health = (await (await fetch(`${base}/health`)).json()) as Record<string, unknown>;
    expect(Object.keys(health).sort()).toEqual(["status", "timestamp", "version"]);
    expect(health.status).toBe("healthy");
    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(200);
  });

  it("accepts authorization: Bearer as well as X-API-Key", async () => {
    const response = await fetch(`${base}/api/batch-processor/batches`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ batches: [], next_page_token: "" });
  });

  it("rejects a number outside the float32 range, naming it", async () => {
    for (const path of ["submit", "infer"]) {
      const response = await post(`/api/batch-processor/${path}`, '{"data":[{"input":[1,1e39]}]}');
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({
        error: "invalid_argument",
        message: "data[0].input[1]: 1e+39 is outside the float32 range",
      });
    }
  });

  it("answers malformed JSON with 400 naming the body", async () => {
    const response = await post("/api/batch-processor/submit", '{"data": [');
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: string; message: string };
    expect(body.error).toBe("invalid_argument");
    expect(body.message).toMatch(/^body: malformed JSON/);
  });

  it.each([
    ['{"data": [{"input": "1,2,3"}]}', /^data\[0\]\.input: expected an array, got "1,2,3"$/],
    ['{"data": [{"input": [1, 2]}], "timeout_ms": "soon"}', /timeout_ms/],
    ['{"data": [{"input": [1, 2]}], "colour": "red"}', /colour/],
    ['{"data": {"input": [1]}}', /^data: expected an array, got \{"input":\[1\]\}$/],
  ])("answers wrong types and unknown fields with 400 naming them: %s", async (body, field) => {
    const response = await post("/api/batch-processor/submit", body);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { message: string }).message).toMatch(field);
  });

  it("refuses a body over MAX_REQUEST_BYTES with 413, also when it only grows once inflated", async () => {
    const big = JSON.stringify({ data: [{ input: Array.from({ length: 20_000 }, () => 1.5) }] });
    const plain = await post("/api/batch-processor/submit", big);
    expect(plain.status).toBe(413);
    const bomb = gzipSync(Buffer.from(big));
    expect(bomb.length).toBeLessThan(65536);
    const inflated = await post("/api/batch-processor/submit", bomb, {
      "content-encoding": "gzip",
    });
    expect(inflated.status).toBe(413);
    const small = await post(
      "/api/batch-processor/submit",
      gzipSync(Buffer.from('{"data":[{"input":[1,2,3]}]}')),
      { "content-encoding": "gzip" },
    );
    expect(small.status).toBe(200);
  });

  it("serves the OpenAPI document of the REST routes without a key", async () => {
    const response = await fetch(`${base}/openapi.json`);
    expect(response.status).toBe(200);
    const doc = (await response.json()) as { info: { version: string }; paths: object };
    expect(Object.keys(doc.paths)).toContain("/api/batch-processor/status/{batch_id}");
    expect(doc.info.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("runs a request that names no model on DEFAULT_MODEL, and waits for it to be ready", async () => {
    const dense = createTestModelRepo({ dense: true });
    const other = await startTestServer(dense.dir, { API_KEYS: KEY, DEFAULT_MODEL: "dense" });
    try {
      const response = await fetch(`http://127.0.0.1:${other.apiPort}/api/batch-processor/infer`, {
        method: "POST",
        headers: { "x-api-key": KEY, "content-type": "application/json" },
        body: JSON.stringify({ data: [{ input: Array(256).fill(0.5) }] }),
      });
      const { results } = (await response.json()) as { results: { output: number[] }[] };
      expect(results[0]?.output).toHaveLength(10); // the dense model's 10 outputs, not default's 3
      expect((await fetch(`http://127.0.0.1:${other.apiPort}/ready`)).status).toBe(200);
    } finally {
      await other.close();
      dense.cleanup();
    }
  });

  it("names each item's top class with the model's labels", async () => {
    const response = await post(
      "/api/batch-processor/infer",
      JSON.stringify({ data: [{ input: [1, 2, 3] }, { input: [9, -4, 0.5] }, { input: [0] }] }),
    );
    const { results } = (await response.json()) as {
      results: { output: number[]; label: string }[];
    };
    expect(results).toHaveLength(3);
    for (const r of results)
      expect(r.label).toBe(`class_${r.output.indexOf(Math.max(...r.output))}`);
  });

  it("streams a batch as Server-Sent Events when asked to", async () => {
    const { batch_id } = (await (
      await post("/api/batch-processor/submit", '{"data":[{"input":[1,2,3]}]}')
    ).json()) as { batch_id: string };
    const response = await fetch(`${base}/api/batch-processor/watch/${batch_id}`, {
      headers: { "x-api-key": KEY, accept: "text/event-stream" },
    });
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const frames = (await response.text()).split("\n\n").filter((f) => f.length > 0);
    const parsed = frames.map((f) => {
      const [id, event, data] = f.split("\n");
      return { id, event, data: JSON.parse((data as string).replace(/^data: /, "")) };
    });
    expect(parsed.map((f) => f.event)).toEqual(Array(frames.length).fill("event: status"));
    expect(parsed.map((f) => f.id)).toEqual(
      frames.map((_, i) => `id: ${i + 1}${i === frames.length - 1 ? "-end" : ""}`),
    );
    expect(parsed.at(-1)?.data).toMatchObject({ batch_id, status: "completed" });
    // An EventSource that reconnects after the end is told to stop; one that lost the stream
    // earlier gets where the batch stands, its ids going on from the last it saw.
    const watch = (lastEventId: string) =>
      fetch(`${base}/api/batch-processor/watch/${batch_id}`, {
        headers: { "x-api-key": KEY, accept: "text/event-stream", "last-event-id": lastEventId },
      });
    expect((await watch(`${frames.length}-end`)).status).toBe(204);
    const resumed = await (await watch("41")).text();
    expect(resumed).toMatch(/^id: 42-end\nevent: status\ndata: \{.*"status":"completed"/);
  });

  it("answers a wrong HTTP method with 405 and the methods that are allowed", async () => {
    const response = await fetch(`${base}/api/batch-processor/submit`, {
      headers: { "x-api-key": KEY },
    });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
    expect(await response.json()).toEqual({
      error: "invalid_argument",
      message: 'method: "GET" is not allowed here; use POST',
    });
  });

  it("answers HEAD on the probes like GET, without a body", async () => {
    for (const path of ["/health", "/ready"]) {
      const response = await fetch(`${base}${path}`, { method: "HEAD" });
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("");
    }
  });

  it("rejects a submit over MAX_QUEUE_SIZE whole with 429 and Retry-After", async () => {
    const small = await start({ API_KEYS: KEY, MAX_QUEUE_SIZE: "5" });
    try {
      const response = await fetch(`http://127.0.0.1:${small.apiPort}/api/batch-processor/submit`, {
        method: "POST",
        headers: { "x-api-key": KEY, "content-type": "application/json" },
        body: JSON.stringify({ data: Array.from({ length: 6 }, () => ({ input: [1, 2] })) }),
      });
      expect(response.status).toBe(429);
      expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      const list = await fetch(`http://127.0.0.1:${small.apiPort}/api/batch-processor/batches`, {
        headers: { "x-api-key": KEY },
      });
      expect(((await list.json()) as { batches: unknown[] }).batches).toEqual([]);
    } finally {
      await small.close();
    }
  });
});

describe("message size limits on every protocol", () => {
  it("refuses a message over MAX_REQUEST_BYTES over gRPC, Connect and gRPC-Web", async () => {
    const url = `http://127.0.0.1:${server.apiPort}`;
    const clients = [
      grpcClient(`127.0.0.1:${server.grpcPort}`),
      connectClient(url),
      grpcWebClient(url),
    ];
    // 20,000 floats: 80 KB in binary protobuf, more in JSON; the limit is 64 KiB.
    const big = { data: [{ input: Array.from({ length: 20_000 }, (_, i) => i / 7) }] };
    try {
      for (const client of clients) {
        const result = await client.call("SubmitBatch", big, KEY);
        expect(result.ok, client.name).toBe(false);
        // The server answers resource_exhausted; over gRPC-Web on HTTP/1.1 it answers before the
        // client has sent the whole body, and connect-node's client then reports the call aborted.
        const expected =
          client.name === "grpc-web" ? ["resource_exhausted", "aborted"] : ["resource_exhausted"];
        if (!result.ok)
          expect(expected, `${client.name}: ${result.message}`).toContain(result.code);
      }
    } finally {
      for (const c of clients) c.close();
    }
  });
});

describe("Prometheus endpoint", () => {
  it("serves /metrics without a key, counting requests by protocol, method and code", async () => {
    await fetch(`${base}/api/batch-processor/status/nope`, { headers: { "x-api-key": KEY } });
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/plain");
    const text = await response.text();
    expect(text).toMatch(
      /batch_processor_requests_total\{protocol="rest",method="GetBatchStatus",code="not_found"\} [1-9]/,
    );
    expect(text).toContain("batch_processor_pending_items");
  });

  it("protects /metrics with METRICS_REQUIRE_API_KEY and turns it off with ENABLE_MONITORING=false", async () => {
    const guarded = await start({ API_KEYS: KEY, METRICS_REQUIRE_API_KEY: "true" });
    const off = await start({ API_KEYS: KEY, ENABLE_MONITORING: "false" });
    try {
      const url = `http://127.0.0.1:${guarded.apiPort}/metrics`;
      expect((await fetch(url)).status).toBe(401);
      expect((await fetch(url, { headers: { "x-api-key": KEY } })).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${off.apiPort}/metrics`)).status).toBe(404);
    } finally {
      await Promise.all([guarded.close(), off.close()]);
    }
  });
});

describe("keys", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const dataDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "bp-keys-"));
    dirs.push(dir);
    return dir;
  };

  it("generates a key when none is configured, keeps it in DATA_DIR across restarts, and accepts only it", async () => {
    const dir = dataDir();
    const first = await start({ DATA_DIR: dir });
    const generated = first.generatedApiKey;
    let batchId: string;
    try {
      expect(generated).toMatchObject({ created: true, path: join(dir, "api-key") });
      expect(generated?.value).toMatch(/^bp_[A-Za-z0-9_-]{32}$/);
      expect(statSync(join(dir, "api-key")).mode & 0o777).toBe(0o600);
      const url = `http://127.0.0.1:${first.apiPort}/api/batch-processor`;
      expect((await fetch(`${url}/batches`)).status).toBe(401);
      const submitted = await fetch(`${url}/submit`, {
        method: "POST",
        headers: { "x-api-key": generated?.value as string },
        body: '{"data": [{"input": [1, 2, 3]}]}',
      });
      batchId = ((await submitted.json()) as { batch_id: string }).batch_id;
    } finally {
      await first.close();
    }
    const second = await start({ DATA_DIR: dir });
    try {
      expect(second.generatedApiKey).toMatchObject({ created: false, value: generated?.value });
      const status = await fetch(
        `http://127.0.0.1:${second.apiPort}/api/batch-processor/status/${batchId}`,
        { headers: { "x-api-key": generated?.value as string } },
      );
      expect(status.status).toBe(200);
    } finally {
      await second.close();
    }
  });

  it("moves batches stored under a key's former owner id to its keyed-hash id", async () => {
    const dir = dataDir();
    const legacy = createHash("sha256").update("old-key").digest("hex").slice(0, 24);
    const store = new SqliteJobStore({ dataDir: dir });
    await store.createBatch(
      {
        owner: legacy,
        batchId: "from-before",
        modelId: "default",
        priority: "normal",
        timeoutMs: 5000,
        createdAt: Date.now(),
        deadline: Date.now() + 5000,
        total: 1,
        metadata: {},
        payloadHash: null,
      },
      [{ index: 0, requestId: "req_1", input: Float32Array.from([1]), shape: [1] }],
    );
    await store.close();
    const server = await start({ DATA_DIR: dir, API_KEYS: "old-key" });
    try {
      const status = await fetch(
        `http://127.0.0.1:${server.apiPort}/api/batch-processor/status/from-before`,
        { headers: { "x-api-key": "old-key" } },
      );
      expect(status.status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it("makes no key an admin when several are set without ADMIN_API_KEYS, and says so", async () => {
    const lines: string[] = [];
    const server = await start({ API_KEYS: "key-a,key-b", LOG_LEVEL: "info" }, lines);
    const url = `http://127.0.0.1:${server.apiPort}/api/batch-processor`;
    try {
      expect(lines.some((l) => /no API key is an admin/.test(l))).toBe(true);
      expect(lines.some((l) => /belongs to the API key that submitted it/.test(l))).toBe(true);
      const submitted = await fetch(`${url}/submit`, {
        method: "POST",
        headers: { "x-api-key": "key-a" },
        body: '{"data": [{"input": [1, 2, 3]}], "batch_id": "mine"}',
      });
      expect(submitted.status).toBe(200);
      for (const path of ["status/mine", "results/mine?partial=true"]) {
        const theirs = await fetch(`${url}/${path}`, { headers: { "x-api-key": "key-b" } });
        expect(theirs.status).toBe(404);
      }
      for (const key of ["key-a", "key-b"]) {
        const configured = await fetch(`${url}/configure`, {
          method: "POST",
          headers: { "x-api-key": key },
          body: '{"max_batch_size": 32}',
        });
        expect(configured.status).toBe(403);
        expect(((await configured.json()) as { message: string }).message).toMatch(
          /ADMIN_API_KEYS/,
        );
      }
    } finally {
      await server.close();
    }
  });

  it("lets the only key of a single-tenant server configure, as the v1 API's example does", async () => {
    const server = await start({ API_KEYS: "solo" });
    try {
      const configured = await fetch(
        `http://127.0.0.1:${server.apiPort}/api/batch-processor/configure`,
        {
          method: "POST",
          headers: { "x-api-key": "solo" },
          body: '{"max_batch_size": 64, "max_wait_time_ms": 50, "enable_dynamic_batching": true, "priority_weights": {"critical": 1.0, "high": 0.8, "normal": 0.5, "low": 0.2}}',
        },
      );
      expect(configured.status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it("serves without keys as an admin when REQUIRE_API_KEY=false", async () => {
    const open = await start({ REQUIRE_API_KEY: "false" });
    try {
      expect(open.generatedApiKey).toBeUndefined();
      const response = await fetch(`http://127.0.0.1:${open.apiPort}/api/batch-processor/config`);
      expect(response.status).toBe(200);
    } finally {
      await open.close();
    }
  });
});

describe("request logs", () => {
  it("write one line per request with method, code, duration and batch id, and never a key", async () => {
    const lines: string[] = [];
    const logged = await start({ API_KEYS: "sup3r-s3cret-key", LOG_LEVEL: "debug" }, lines);
    const url = `http://127.0.0.1:${logged.apiPort}`;
    const clients = [
      grpcClient(`127.0.0.1:${logged.grpcPort}`),
      connectClient(url),
      grpcWebClient(url),
      restClient(url),
    ];
    try {
      for (const client of clients) {
        await client.call(
          "SubmitBatch",
          { data: [{ input: [1, 2] }], batch_id: `log-${client.name}` },
          "sup3r-s3cret-key",
        );
        await client.call("GetBatchStatus", { batch_id: "missing" }, "wrong-key-also-secret");
      }
    } finally {
      for (const c of clients) c.close();
      await logged.close();
    }
    const requests = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === "request");
    expect(requests.map((r) => r.protocol).sort()).toEqual([
      "connect",
      "connect",
      "grpc",
      "grpc",
      "grpc-web",
      "grpc-web",
      "rest",
      "rest",
    ]);
    const submit = requests.find((r) => r.protocol === "rest" && r.method === "SubmitBatch");
    expect(submit).toMatchObject({ code: "ok", batchId: "log-rest" });
    expect(typeof submit?.durationMs).toBe("number");
    expect(
      requests
        .filter((r) => r.method === "GetBatchStatus")
        .every((r) => r.code === "unauthenticated"),
    ).toBe(true);
    const all = lines.join("\n");
    expect(all).not.toContain("sup3r-s3cret-key");
    expect(all).not.toContain("wrong-key-also-secret");
  });
});

describe("gRPC transport", () => {
  it("opens each connection with wide HTTP/2 receive windows, not Node's 64 KiB", async () => {
    const session = connect(`http://127.0.0.1:${server.grpcPort}`);
    try {
      // The server's first SETTINGS are Node's; the widened ones follow in a second frame.
      session.on("error", () => {});
      const started = Date.now();
      while (
        session.remoteSettings?.initialWindowSize !== STREAM_WINDOW_BYTES &&
        Date.now() - started < 2000
      )
        await new Promise((r) => setTimeout(r, 10));
      expect(session.remoteSettings.initialWindowSize).toBe(STREAM_WINDOW_BYTES);
      // The connection-level window arrives as a WINDOW_UPDATE with them.
      expect(session.state.remoteWindowSize).toBe(CONNECTION_WINDOW_BYTES);
    } finally {
      session.destroy();
    }
  });
});

describe("gRPC health", () => {
  it("answers grpc.health.v1.Health/Check with SERVING", async () => {
    const Client = grpc.makeGenericClientConstructor(healthService, "Health");
    const client = new Client(
      `127.0.0.1:${server.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as unknown as {
      check: (req: object, cb: (e: Error | null, r: { status: string }) => void) => void;
      close: () => void;
    };
    const reply = await new Promise<{ status: string }>((resolve, reject) =>
      client.check({ service: "" }, (e, r) => (e ? reject(e) : resolve(r))),
    );
    client.close();
    expect(reply.status).toBe("SERVING");
  });
});

describe("internal errors", () => {
  const SECRET = "secret-detail-/etc/passwd";
  let auth: Authenticator;
  const logged: unknown[] = [];
  const log = { debug() {}, info() {}, warn() {}, error: (fields: object) => logged.push(fields) };
  let close: () => Promise<void>;
  let clients: ProtocolClient[];

  beforeAll(async () => {
    auth = createAuthenticator({ apiKeys: [KEY], secret: Buffer.from("test") });
    const boom = async () => {
      throw new Error(SECRET);
    };
    const impl = new Proxy({} as BatchProcessorServiceImpl, {
      get: (_target, name) =>
        name === "watchBatch"
          ? async function* () {
              yield* [];
              throw new Error(SECRET);
            }
          : boom,
    });
    const binding = {
      impl,
      auth,
      log,
      guard: createOverloadGuard({ maxRequestsInFlight: 0, maxEventLoopDelayMs: 0 }),
    };
    const http = await startHttpServer(binding, {
      host: "127.0.0.1",
      port: 0,
      maxBodyBytes: 65536,
      requestTimeoutMs: 10_000,
      version: "test",
      notReady: () => [],
      webSockets: {
        maxConnections: 10,
        maxConnectionsPerKey: 10,
        idleTimeoutMs: 60_000,
        messagesPerSecond: 20,
      },
    });
    const grpcServer = await startGrpcServer(binding, {
      host: "127.0.0.1",
      port: 0,
      maxMessageBytes: 65536,
    });
    const url = `http://127.0.0.1:${http.port}`;
    clients = [
      grpcClient(`127.0.0.1:${grpcServer.port}`),
      connectClient(url),
      grpcWebClient(url),
      restClient(url),
    ];
    close = async () => {
      for (const c of clients) c.close();
      await Promise.all([http.close(1000), grpcServer.close(1000)]);
    };
  });
  afterAll(() => close());

  it("never shows the message of an internal error on any protocol, and logs it with an error_id", async () => {
    for (const client of clients) {
      for (const method of ["GetBatchStatus", "WatchBatch"]) {
        const result = await client.call(method, { batch_id: "x" }, KEY);
        expect(result.ok, `${client.name} ${method}`).toBe(false);
        if (result.ok) continue;
        expect(result.code).toBe("internal");
        expect(result.message).not.toContain("secret");
        const errorId = /error_id ([0-9a-f-]{36})/.exec(result.message)?.[1];
        expect(errorId, `${client.name} ${method}: ${result.message}`).toBeDefined();
        expect(JSON.stringify(logged)).toContain(errorId);
      }
    }
    expect(logged.length).toBeGreaterThanOrEqual(8);
  });
});
