/**
 * The contract over every protocol against a real server on port 0: the real engine, the default
 * and a dense ONNX model in real threads, the SQLite store in memory.
 */
import { execFileSync } from "node:child_process";
import type { JsonObject } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server.js";
import {
  type CallResult,
  connectClient,
  grpcClient,
  grpcWebClient,
  type ProtocolClient,
  restClient,
} from "../fixtures/api-clients.js";
import {
  createTestModelRepo,
  DENSE_LAYERS,
  type TestModelRepo,
  vector,
} from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const ALICE = "alice-key";
const BOB = "bob-key";
const ADMIN = "admin-key";

let repo: TestModelRepo;
let server: RunningServer;
const clients: ProtocolClient[] = [];

beforeAll(async () => {
  repo = createTestModelRepo({ dense: true, log: true });
  server = await startTestServer(repo.dir, {
    INFERENCE_THREADS: "2",
    API_KEYS: `${ALICE},${BOB}`,
    ADMIN_API_KEYS: ADMIN,
    MAX_REQUEST_BYTES: String(4 * 1024 * 1024),
  });
  const base = `http://127.0.0.1:${server.apiPort}`;
  clients.push(
    grpcClient(`127.0.0.1:${server.grpcPort}`),
    connectClient(base),
    grpcWebClient(base),
    restClient(base),
  );
});

afterAll(async () => {
  for (const c of clients) c.close();
  await server.close();
  repo.cleanup();
});

function hasNvidiaSmi(): boolean {
  try {
    execFileSync("nvidia-smi", ["--query-gpu=utilization.gpu", "--format=csv,noheader"], {
      stdio: "ignore",
      timeout: 5000,
    });
    return true;
  } catch {
    return false;
  }
}

function ok(result: CallResult): JsonObject {
  if (!result.ok) throw new Error(`expected success, got ${result.code}: ${result.message}`);
  return result.json as JsonObject;
}

function failure(result: CallResult): { code: string; message: string } {
  if (result.ok) throw new Error(`expected an error, got ${JSON.stringify(result.json)}`);
  return result;
}

let unique = 0;
const id = (name: string) => `${name}-${Date.now()}-${unique++}`;

const protocols = ["grpc", "connect", "grpc-web", "rest"] as const;

describe.each(protocols)("over %s", (protocol) => {
  const client = () => clients.find((c) => c.name === protocol) as ProtocolClient;

  it("runs a batch from submit to results, streaming status to the terminal event", async () => {
    const submitted = ok(
      await client().call(
        "SubmitBatch",
        {
          data: [{ input: [1, 2, 3, 4, 5] }, { input: [6, 7, 8, 9, 10], request_id: "mine" }],
          priority: "high",
          metadata: { user_id: "u1" },
        },
        ALICE,
      ),
    );
    expect(Object.keys(submitted).sort()).toEqual([
      "batch_id",
      "estimated_completion_time",
      "queue_position",
      "request_count",
      "status",
    ]);
    expect(submitted).toMatchObject({ status: "queued", request_count: 2 });
    const watched = await client().call(
      "WatchBatch",
      { batch_id: submitted.batch_id as string },
      ALICE,
    );
    expect(watched.ok).toBe(true);
    const events = (watched as { events: JsonObject[] }).events;
    expect(events.at(-1)).toMatchObject({
      status: "completed",
      progress: 1,
      completed_requests: 2,
      total_requests: 2,
    });
    const results = ok(
      await client().call("GetBatchResults", { batch_id: submitted.batch_id as string }, ALICE),
    );
    expect(results).toMatchObject({
      batch_id: submitted.batch_id,
      status: "completed",
      metadata: { batch_size: 2 },
    });
    const items = results.results as JsonObject[];
    expect(items.map((r) => r.request_id)).toEqual(["req_1", "mine"]);
    for (const item of items) {
      expect(item.output).toHaveLength(3);
      expect((item.output as number[]).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(item.confidence).toBe(Math.max(...(item.output as number[])));
      expect(typeof item.processing_time_ms).toBe("number");
    }
  });

  it("writes the v1 API's status JSON: snake_case names, zero values, numbers, RFC 3339 times", async () => {
    const { batch_id } = ok(
      await client().call("SubmitBatch", { data: [{ input: [1, 2, 3] }] }, ALICE),
    );
    await client().call("WatchBatch", { batch_id: batch_id as string }, ALICE);
    const status = ok(
      await client().call("GetBatchStatus", { batch_id: batch_id as string }, ALICE),
    );
    for (const field of [
      "batch_id",
      "status",
      "progress",
      "completed_requests",
      "total_requests",
      "estimated_completion_time",
      "processing_time_ms",
    ]) {
      expect(status, field).toHaveProperty(field);
    }
    expect(status.queue_position).toBe(0);
    expect(typeof status.total_requests).toBe("number");
    expect(status.estimated_completion_time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(status.priority).toBe("normal");
  });

  it("refuses calls without a valid API key", async () => {
    expect(failure(await client().call("ListBatches", {}, undefined)).code).toBe("unauthenticated");
    expect(failure(await client().call("ListBatches", {}, "not-a-key")).code).toBe(
      "unauthenticated",
    );
  });

  it("keeps one key's batches from another and shows them to an admin", async () => {
    const { batch_id } = ok(await client().call("SubmitBatch", { data: [{ input: [1] }] }, ALICE));
    expect(
      failure(await client().call("GetBatchStatus", { batch_id: batch_id as string }, BOB)).code,
    ).toBe("not_found");
    expect(
      failure(await client().call("CancelBatch", { batch_id: batch_id as string }, BOB)).code,
    ).toBe("not_found");
    expect(
      ok(await client().call("GetBatchStatus", { batch_id: batch_id as string }, ADMIN)).batch_id,
    ).toBe(batch_id);
    const bobs = ok(await client().call("ListBatches", { status: "all" }, BOB))
      .batches as JsonObject[];
    expect(bobs.map((b) => b.batch_id)).not.toContain(batch_id);
  });

  it("treats batch_id as an idempotency key per API key", async () => {
    const batchId = id("idem");
    const first = ok(
      await client().call("SubmitBatch", { data: [{ input: [1, 2] }], batch_id: batchId }, ALICE),
    );
    const again = ok(
      await client().call("SubmitBatch", { data: [{ input: [1, 2] }], batch_id: batchId }, ALICE),
    );
    expect(again.batch_id).toBe(first.batch_id);
    const other = failure(
      await client().call("SubmitBatch", { data: [{ input: [9] }], batch_id: batchId }, ALICE),
    );
    expect(other.code).toBe("already_exists");
    expect(
      ok(await client().call("SubmitBatch", { data: [{ input: [9] }], batch_id: batchId }, BOB))
        .batch_id,
    ).toBe(batchId);
  });

  it("answers results with FAILED_PRECONDITION until the batch ends, unless partial; cancels it", async () => {
    // One item per model batch and two full batches ahead keep the target queued for a while.
    // Deadlines far away: on a machine busy with other tests the work ahead is estimated long,
    // and a near deadline would have the target refused at admission.
    ok(
      await client().call(
        "Configure",
        { max_batch_size: 1, enable_dynamic_batching: false },
        ADMIN,
      ),
    );
    const ahead: JsonObject[] = [];
    try {
      const data = Array.from({ length: 1000 }, (_, i) => ({ input: vector(i, DENSE_LAYERS[0]) }));
      for (let k = 0; k < 2; k++) {
        ahead.push(
          ok(
            await client().call(
              "SubmitBatch",
              { data, metadata: { model_id: "dense" }, timeout_ms: 300_000, priority: "low" },
              ALICE,
            ),
          ),
        );
      }
      const target = {
        data: [{ input: vector(7, DENSE_LAYERS[0]) }],
        metadata: { model_id: "dense" },
        timeout_ms: 300_000,
        priority: "low",
      };
      const { batch_id } = ok(await client().call("SubmitBatch", target, ALICE));
      const early = failure(
        await client().call("GetBatchResults", { batch_id: batch_id as string }, ALICE),
      );
      expect(early.code).toBe("failed_precondition");
      const partial = ok(
        await client().call(
          "GetBatchResults",
          { batch_id: batch_id as string, partial: true },
          ALICE,
        ),
      );
      expect(partial.results).toEqual([]);
      const cancelled = ok(
        await client().call("CancelBatch", { batch_id: batch_id as string }, ALICE),
      );
      expect(cancelled.status).toBe("cancelled");
      expect(cancelled.error).toMatch(/^CANCELLED/);
      const results = ok(
        await client().call("GetBatchResults", { batch_id: batch_id as string }, ALICE),
      );
      expect(results.status).toBe("cancelled");
      expect((results.results as JsonObject[])[0]?.error).toMatch(
        /^CANCELLED: the batch was cancelled before the item ran/,
      );
    } finally {
      for (const batch of ahead)
        await client().call("CancelBatch", { batch_id: batch.batch_id as string }, ALICE);
      ok(
        await client().call(
          "Configure",
          { max_batch_size: 64, enable_dynamic_batching: true },
          ADMIN,
        ),
      );
    }
  });

  it("reloads the model repository for admin keys only", async () => {
    const denied = failure(await client().call("ReloadModels", {}, ALICE));
    expect(denied.code).toBe("permission_denied");
    expect(denied.message).toContain("may not reload the models");
    const reloaded = ok(await client().call("ReloadModels", {}, ADMIN));
    expect(reloaded.changes).toEqual(
      ["default", "dense", "log"].map((name) => ({ name, outcome: "unchanged" })),
    );
    const models = reloaded.models as JsonObject[];
    expect(models.map((m) => m.name)).toEqual(["default", "dense", "log"]);
    expect(Date.parse(String(models[0]?.loaded_at))).toBeLessThanOrEqual(Date.now());
  });

  it("configures live for admins only, validating every field", async () => {
    expect(failure(await client().call("Configure", { max_batch_size: 32 }, ALICE)).code).toBe(
      "permission_denied",
    );
    const bad = failure(await client().call("Configure", { max_batch_size: 0 }, ADMIN));
    expect(bad.code).toBe("invalid_argument");
    expect(bad.message).toContain("max_batch_size");
    const weights = failure(
      await client().call("Configure", { priority_weights: { urgent: 1 } }, ADMIN),
    );
    expect(weights.message).toContain("priority_weights.urgent");
    const config = ok(
      await client().call(
        "Configure",
        {
          max_batch_size: 48,
          priority_weights: { low: 0.25 },
          priority_latency_ms: { normal: 500 },
        },
        ADMIN,
      ),
    );
    expect(config).toMatchObject({
      max_batch_size: 48,
      max_wait_time_ms: 50,
      enable_dynamic_batching: true,
      priority_weights: { low: 0.25, critical: 1 },
      priority_latency_ms: { critical: 100, high: 1000, normal: 500, low: 0 },
    });
    const read = ok(await client().call("GetConfig", {}, ALICE));
    expect(read.max_batch_size).toBe(48);
    expect(read.priority_latency_ms).toEqual(config.priority_latency_ms);
    ok(
      await client().call(
        "Configure",
        { max_batch_size: 64, priority_weights: { low: 0.2 }, priority_latency_ms: { normal: 0 } },
        ADMIN,
      ),
    );
  });

  it("infers synchronously and lists the models", async () => {
    const results = ok(
      await client().call(
        "Infer",
        { data: [{ input: [1, 2, 3] }, { input: [4, 5, 6, 7, 8] }] },
        ALICE,
      ),
    );
    expect(results.status).toBe("completed");
    expect((results.results as JsonObject[]).map((r) => (r.output as number[]).length)).toEqual([
      3, 3,
    ]);
    const models = ok(await client().call("ListModels", {}, ALICE)).models as JsonObject[];
    expect(models.map((m) => m.name)).toEqual(["default", "dense", "log"]);
    expect(models[0]).toMatchObject({
      available: true,
      input_shape: [-1],
      output_kind: "probabilities",
    });
  });

  it.each<[string, JsonObject, RegExp]>([
    ["empty data", { data: [] }, /^data: must contain at least 1 item/],
    [
      "more than 1000 items",
      { data: Array.from({ length: 1001 }, () => ({ input: [1] })) },
      /at most 1000 items, got 1001/,
    ],
    [
      "an empty input",
      { data: [{ input: [] }] },
      /^data\[0\]\.input: must contain at least 1 number/,
    ],
    [
      "a non-finite number",
      { data: [{ input: [1, "NaN"] }] },
      /data\[0\]\.input\[1\]: expected a finite number, got NaN/,
    ],
    [
      "an unknown priority",
      { data: [{ input: [1] }], priority: "urgent" },
      /^priority: expected one of critical, high, normal, low/,
    ],
    [
      "timeout_ms below 100",
      { data: [{ input: [1] }], timeout_ms: 50 },
      /^timeout_ms: expected an integer in 100\.\.300000/,
    ],
    ["timeout_ms above 300000", { data: [{ input: [1] }], timeout_ms: 300_001 }, /^timeout_ms: /],
    [
      "an input length the model cannot take",
      { data: [{ input: [1, 2] }], metadata: { model_id: "dense" } },
      /expected 256 numbers for model "dense", got 2/,
    ],
    [
      "a shape that does not match",
      { data: [{ input: [1, 2, 3], shape: [2, 2] }] },
      /data\[0\]\.shape/,
    ],
  ])("rejects %s with INVALID_ARGUMENT naming the field", async (_name, request, message) => {
    const error = failure(await client().call("SubmitBatch", request, ALICE));
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toMatch(message);
  });

  it("rejects an unknown model with NOT_FOUND listing the models", async () => {
    const error = failure(
      await client().call(
        "SubmitBatch",
        { data: [{ input: [1] }], metadata: { model_id: "gpt-9" } },
        ALICE,
      ),
    );
    expect(error.code).toBe("not_found");
    expect(error.message).toContain("available models: default, dense, log");
  });

  it("fails an item whose model output is not finite, and never writes NaN or Infinity", async () => {
    for (const method of ["Infer", "SubmitBatch"] as const) {
      const request = { data: [{ input: [1, 2] }, { input: [-1, 2] }, { input: [0] }] };
      const answered = ok(
        await client().call(method, { ...request, metadata: { model_id: "log" } }, ALICE),
      );
      const batchId = answered.batch_id as string;
      if (method === "SubmitBatch") await client().call("WatchBatch", { batch_id: batchId }, ALICE);
      const results =
        method === "Infer"
          ? answered
          : ok(await client().call("GetBatchResults", { batch_id: batchId }, ALICE));
      const items = results.results as JsonObject[];
      expect(results.status).toBe("failed");
      expect(((items[0]?.output ?? []) as number[]).map((v) => Math.round(v * 1000))).toEqual([
        0, 693,
      ]);
      for (const item of items.slice(1)) {
        expect(item.output).toEqual([]);
        expect(item.error).toBe(
          "INTERNAL: the model's output for this item is not finite (NaN or Infinity)",
        );
      }
      // Every number written is a finite JSON number (proto3 JSON would write "NaN" as a string).
      for (const item of items) {
        expect(typeof item.confidence).toBe("number");
        for (const v of item.output as unknown[]) expect(Number.isFinite(v)).toBe(true);
      }
    }
  });

  it("reports the v1 API's metrics JSON from live counters", async () => {
    await client().call("Infer", { data: [{ input: [1, 2, 3] }] }, ALICE);
    const metrics = ok(await client().call("GetMetrics", {}, ALICE));
    // The v1 API's fields, and this server's: the nodes and the live rate.
    expect(Object.keys(metrics).sort()).toEqual([
      "current_stats",
      "nodes",
      "performance_stats",
      "resource_usage",
    ]);
    const current = metrics.current_stats as JsonObject;
    expect(Object.keys(current).sort()).toEqual([
      "active_batches",
      "average_batch_size",
      "average_latency_ms",
      "queue_length",
      "recent_items_per_second",
      "throughput_per_second",
    ]);
    expect(current.recent_items_per_second).toHaveLength(60);
    const nodes = metrics.nodes as JsonObject[];
    expect(nodes).toHaveLength(1);
    expect(nodes[0]).toMatchObject({ node: expect.any(String), threads: 2 });
    const performance = metrics.performance_stats as JsonObject;
    expect(Object.keys(performance).sort()).toEqual([
      "average_processing_time_ms",
      "error_rate",
      "success_rate",
      "total_processed",
    ]);
    expect(performance.total_processed).toBeGreaterThan(0);
    expect((performance.success_rate as number) + (performance.error_rate as number)).toBeCloseTo(
      1,
      9,
    );
    const usage = metrics.resource_usage as JsonObject;
    expect(usage.memory_usage_mb).toBeGreaterThan(10);
    expect(typeof usage.cpu_usage_percent).toBe("number");
    // From nvidia-smi where the machine has it; otherwise absent rather than a made-up number.
    if (hasNvidiaSmi()) {
      if ("gpu_usage_percent" in usage) {
        expect(usage.gpu_usage_percent).toBeGreaterThanOrEqual(0);
        expect(usage.gpu_usage_percent).toBeLessThanOrEqual(100);
      }
    } else expect(usage).not.toHaveProperty("gpu_usage_percent");
  });

  it("answers analytics for a period, overall and per priority, and names what it accepts", async () => {
    await client().call("Infer", { data: [{ input: [1, 2, 3] }], priority: "critical" }, ALICE);
    const report = ok(
      await client().call(
        "GetAnalytics",
        { period: "5m", metrics: ["throughput", "latency"] },
        ALICE,
      ),
    );
    expect(report.period).toBe("5m");
    const series = report.series as JsonObject[];
    expect(new Set(series.map((s) => s.metric))).toEqual(
      new Set(["throughput", "latency_p50", "latency_p95", "latency_p99"]),
    );
    expect(new Set(series.map((s) => s.priority))).toEqual(
      new Set(["all", "critical", "high", "normal", "low"]),
    );
    const throughput = series.find(
      (s) => s.metric === "throughput" && s.priority === "all",
    ) as JsonObject;
    expect(throughput.points).toHaveLength(5);
    expect(throughput.summary).toBeGreaterThan(0);
    const bad = failure(await client().call("GetAnalytics", { period: "2h" }, ALICE));
    expect(bad.code).toBe("invalid_argument");
    expect(bad.message).toContain("5m, 15m, 1h, 6h, 24h");
    const unknown = failure(await client().call("GetAnalytics", { metrics: ["vibes"] }, ALICE));
    expect(unknown.message).toMatch(
      /^metrics: unknown metric "vibes"; expected any of throughput, latency/,
    );
  });
});
