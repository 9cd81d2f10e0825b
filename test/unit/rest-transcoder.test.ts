import { fromJson, type JsonObject, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  BatchProcessorService,
  SubmitBatchRequestSchema,
} from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import {
  decodeRestRequest,
  matchRoute,
  type RestRoute,
  routesOf,
} from "../../src/api/rest-transcoder.js";
import { InvalidInputError } from "../../src/engine/index.js";

const routes = routesOf(BatchProcessorService);
const route = (name: string) => routes.find((r) => r.method.name === name) as RestRoute;
/** Same message, byte for byte (NaN-safe, unlike equals()). */
const same = (a: unknown, b: unknown) =>
  Buffer.from(toBinary(SubmitBatchRequestSchema, a as never)).equals(
    Buffer.from(toBinary(SubmitBatchRequestSchema, b as never)),
  );

describe("REST transcoding from google.api.http", () => {
  it("derives one route per annotated method, with the v1 API's paths", () => {
    expect(routes.map((r) => `${r.httpMethod} ${r.template}`).sort()).toEqual(
      [
        "DELETE /api/batch-processor/cancel/{batch_id}",
        "GET /api/batch-processor/analytics",
        "GET /api/batch-processor/batches",
        "GET /api/batch-processor/config",
        "GET /api/batch-processor/jobs",
        "GET /api/batch-processor/jobs/{job_id}",
        "GET /api/batch-processor/jobs/{job_id}/results",
        "GET /api/batch-processor/jobs/{job_id}/watch",
        "POST /api/batch-processor/jobs",
        "POST /api/batch-processor/jobs/{job_id}/cancel",
        "GET /api/batch-processor/metrics",
        "GET /api/batch-processor/models",
        "GET /api/batch-processor/results/{batch_id}",
        "GET /api/batch-processor/status/{batch_id}",
        "GET /api/batch-processor/watch/{batch_id}",
        "POST /api/batch-processor/configure",
        "POST /api/batch-processor/infer",
        "POST /api/batch-processor/models/reload",
        "POST /api/batch-processor/submit",
      ].sort(),
    );
  });

  it("matches path variables, decoding them", () => {
    const match = matchRoute(routes, "GET", "/api/batch-processor/status/a%3Ab");
    expect(match && "params" in match ? [match.route.method.name, match.params] : match).toEqual([
      "GetBatchStatus",
      { batch_id: "a:b" },
    ]);
  });

  it("reports the allowed methods when only the path matches", () => {
    expect(matchRoute(routes, "GET", "/api/batch-processor/submit")).toMatchObject({
      allowed: ["POST"],
      route: { template: "/api/batch-processor/submit" },
    });
    expect(matchRoute(routes, "GET", "/api/nothing")).toBeUndefined();
  });

  it("reads query parameters into fields, repeated ones from comma lists", () => {
    const analytics = decodeRestRequest(
      route("GetAnalytics"),
      {},
      new URLSearchParams("period=1h&metrics=throughput,latency&metrics=queue_wait"),
      undefined,
    );
    expect(analytics).toMatchObject({
      period: "1h",
      metrics: ["throughput", "latency", "queue_wait"],
    });
    const list = decodeRestRequest(
      route("ListBatches"),
      {},
      new URLSearchParams("status=active&limit=10"),
      undefined,
    );
    expect(list).toMatchObject({ status: "active", limit: 10 });
    const partial = decodeRestRequest(
      route("GetBatchResults"),
      { batch_id: "b" },
      new URLSearchParams("partial=true"),
      undefined,
    );
    expect(partial).toMatchObject({ batchId: "b", partial: true });
  });

  it("rejects unknown query parameters and values of the wrong type, naming them", () => {
    expect(() =>
      decodeRestRequest(route("ListBatches"), {}, new URLSearchParams("colour=red"), undefined),
    ).toThrow(/^colour: unknown query parameter/);
    expect(() =>
      decodeRestRequest(route("ListBatches"), {}, new URLSearchParams("limit=ten"), undefined),
    ).toThrow(InvalidInputError);
  });

  it.each<JsonObject>([
    {
      data: [{ input: [1, 2.5, -3] }, { input: [4], request_id: "x", shape: [1] }],
      priority: "high",
      metadata: { model_id: "default", a: [1, { b: null }] },
    },
    { data: [] },
    { data: [{ input: [] }], timeout_ms: 5000, batch_id: "id-1" },
  ])("decodes a submit body exactly as protobuf-es's fromJson does: %j", (body) => {
    const decoded = decodeRestRequest(route("SubmitBatch"), {}, new URLSearchParams(), body);
    expect(same(decoded, fromJson(SubmitBatchRequestSchema, body))).toBe(true);
  });

  it.each<[JsonObject]>([
    [{ data: [{ input: [1, "2"] }] }],
    [{ data: [{ input: ["NaN"] }] }],
    [{ data: [{ input: [1], request_id: "r" }] }],
  ])("decodes proto3 JSON forms of numbers as fromJson does: %j", (body) => {
    const decoded = decodeRestRequest(route("SubmitBatch"), {}, new URLSearchParams(), body);
    expect(same(decoded, fromJson(SubmitBatchRequestSchema, body))).toBe(true);
  });

  it.each<[JsonObject, string]>([
    [
      { data: [{ input: [1], shape: [-1] }] },
      "data[0].shape[0]: expected an integer in 0..4294967295, got -1",
    ],
    [
      { data: [{ input: [1], colour: 1 }] },
      "data[0].colour: unknown field; expected one of input, request_id, shape, inputs",
    ],
    [{ data: [{ inpt: [1] }] }, 'data[0].inpt: unknown field, did you mean "input"?'],
    [
      { data: [{ input: [1] }], colour: 1 },
      "colour: unknown field; expected one of data, priority, batch_id, timeout_ms, metadata, output_names",
    ],
    [{ data: [{ input: [1, "abc"] }] }, 'data[0].input[1]: expected a number, got "abc"'],
    [{ data: [{ input: [1, 1e39] }] }, "data[0].input[1]: 1e+39 is outside the float32 range"],
    [{ data: [1] }, "data[0]: expected an object, got 1"],
    [{ data: { input: [1] } }, 'data: expected an array, got {"input":[1]}'],
    [{ data: [{ input: "1,2,3" }] }, 'data[0].input: expected an array, got "1,2,3"'],
    [
      { data: [{ input: [1] }], timeout_ms: "soon" },
      'timeout_ms: expected an integer in 0..4294967295, got "soon"',
    ],
    [{ data: [{ input: [1] }], priority: 3 }, "priority: expected a string, got 3"],
    [{ data: [{ input: [1] }], metadata: [1] }, "metadata: expected a JSON object, got [1]"],
  ])("names the field of what does not fit, never a protobuf type: %j", (body, message) => {
    let thrown: unknown;
    try {
      decodeRestRequest(route("SubmitBatch"), {}, new URLSearchParams(), body);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidInputError);
    expect((thrown as Error).message).toBe(message);
  });
});
