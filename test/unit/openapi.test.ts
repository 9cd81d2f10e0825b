import { describe, expect, it } from "vitest";
import { BatchProcessorService } from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import { openApiDocument } from "../../src/api/openapi.js";
import { routesOf } from "../../src/api/rest-transcoder.js";

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, Record<string, unknown>>>;
  components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
};

const doc = openApiDocument(BatchProcessorService, "9.9.9") as unknown as Doc;

/** Every `$ref` anywhere in `value`. */
function refs(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(refs);
  if (typeof value !== "object" || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => (k === "$ref" ? [v as string] : refs(v)));
}

describe("the OpenAPI document", () => {
  it("has every REST route, with its method, path parameters and operation", () => {
    const routes = routesOf(BatchProcessorService);
    expect(routes.length).toBeGreaterThanOrEqual(11);
    for (const route of routes) {
      const operation = doc.paths[route.template]?.[route.httpMethod.toLowerCase()];
      expect(operation, `${route.httpMethod} ${route.template}`).toBeDefined();
      expect(operation?.operationId).toBe(route.method.localName);
      const inPath = (operation?.parameters as { name: string; in: string }[] | undefined) ?? [];
      for (const segment of route.segments)
        if (typeof segment !== "string")
          expect(inPath).toContainEqual(
            expect.objectContaining({ name: segment.field, in: "path" }),
          );
    }
    const operations = Object.values(doc.paths).flatMap((p) => Object.keys(p));
    expect(operations).toHaveLength(routes.length);
  });

  it("describes the JSON the server writes: proto names, query parameters, every schema it refers to", () => {
    expect(doc.openapi).toBe("3.0.3");
    const results = doc.components.schemas.ItemResult?.properties ?? {};
    expect(Object.keys(results)).toEqual(
      expect.arrayContaining(["request_id", "output", "confidence", "processing_time_ms", "label"]),
    );
    const list = doc.paths["/api/batch-processor/batches"]?.get?.parameters as { name: string }[];
    expect(list.map((p) => p.name)).toEqual(
      expect.arrayContaining(["status", "limit", "page_token"]),
    );
    // A job's upload: its spec in the query string, its lines as a JSON Lines body, 201.
    const upload = doc.paths["/api/batch-processor/jobs"]?.post ?? {};
    expect((upload.parameters as { name: string; in: string }[]).map((p) => p.name)).toEqual(
      expect.arrayContaining(["model_id", "priority", "completion_window", "job_id", "on_invalid"]),
    );
    expect(Object.keys((upload.requestBody as { content: object }).content)).toEqual([
      "application/x-ndjson",
    ]);
    expect(Object.keys(upload.responses as object)).toContain("201");
    const submit = doc.paths["/api/batch-processor/submit"]?.post?.requestBody;
    expect(refs(submit)).toEqual(["#/components/schemas/SubmitBatchRequest"]);
    for (const ref of refs(doc)) {
      const name = ref.replace("#/components/schemas/", "");
      expect(doc.components.schemas[name], ref).toBeDefined();
    }
  });
});
