import { describe, expect, it } from "vitest";
import {
  InvalidInputError,
  ModelNotFoundError,
  ModelUnavailableError,
  type SubmitRequest,
} from "../../src/engine/index.js";
import {
  METADATA_LIMITS,
  validateBatchId,
  validateListFilter,
  validateSubmit,
} from "../../src/engine/validation.js";
import { fakeCatalog } from "../fixtures/fake-pool.js";

const models = fakeCatalog();
const valid = (request: SubmitRequest) => validateSubmit(request, models, "default");
const ok: SubmitRequest = { data: [{ input: [1, 2, 3] }] };

function rejects(
  request: unknown,
  message: RegExp,
  type: new (...args: never[]) => Error = InvalidInputError,
) {
  expect(() => valid(request as SubmitRequest)).toThrow(type);
  expect(() => valid(request as SubmitRequest)).toThrow(message);
}

describe("validateSubmit", () => {
  it("fills the v1 API's defaults", () => {
    const v = valid(ok);
    expect(v).toMatchObject({
      priority: "normal",
      timeoutMs: 5000,
      batchId: undefined,
      metadata: {},
    });
    expect(v.model.name).toBe("default");
    expect(v.items[0]).toMatchObject({ requestId: "req_1", inputs: [{ shape: [3] }] });
    expect(Array.from((v.items[0]?.inputs[0]?.data ?? []) as ArrayLike<number>)).toEqual([1, 2, 3]);
  });

  it("keeps client request ids and numbers the others from 1", () => {
    const v = valid({ data: [{ input: [1] }, { input: [2], requestId: "mine" }, { input: [3] }] });
    expect(v.items.map((i) => i.requestId)).toEqual(["req_1", "mine", "req_3"]);
  });

  it("rejects a body that is not an object", () => rejects(null, /^body: /));
  it("rejects data that is not an array", () => rejects({ data: "x" }, /^data: expected an array/));
  it("rejects an empty data array", () =>
    rejects({ data: [] }, /^data: must contain at least 1 item/));
  it("rejects more than 1000 items", () =>
    rejects(
      { data: Array.from({ length: 1001 }, () => ({ input: [1] })) },
      /^data: must contain at most 1000 items, got 1001/,
    ));
  it("rejects an item that is not an object", () =>
    rejects({ data: [{ input: [1] }, 5] }, /^data\[1\]: expected an object/));
  it("rejects an item without input", () =>
    rejects({ data: [{}] }, /^data\[0\]\.input: is required/));
  it("rejects an input that is not an array", () =>
    rejects({ data: [{ input: "1,2" }] }, /^data\[0\]\.input: expected an array of numbers/));
  it("rejects an empty input", () =>
    rejects({ data: [{ input: [] }] }, /^data\[0\]\.input: must contain at least 1 number/));
  it("rejects a string among the numbers", () =>
    rejects(
      { data: [{ input: [1, "2"] }] },
      /^data\[0\]\.input\[1\]: expected a finite number, got "2"/,
    ));
  it("rejects NaN", () =>
    rejects(
      { data: [{ input: [Number.NaN] }] },
      /^data\[0\]\.input\[0\]: expected a finite number, got NaN/,
    ));
  it("rejects Infinity", () =>
    rejects(
      { data: [{ input: [1, Number.POSITIVE_INFINITY] }] },
      /input\[1\]: expected a finite number, got Infinity/,
    ));
  it("rejects an unknown priority", () =>
    rejects(
      { ...ok, priority: "urgent" },
      /^priority: expected one of critical, high, normal, low, got "urgent"/,
    ));
  it.each([99, 300_001, 1.5, "5000"])("rejects timeout_ms %s", (t) =>
    rejects({ ...ok, timeoutMs: t }, /^timeout_ms: expected an integer in 100\.\.300000/),
  );
  it("accepts the timeout_ms bounds", () => {
    expect(valid({ ...ok, timeoutMs: 100 }).timeoutMs).toBe(100);
    expect(valid({ ...ok, timeoutMs: 300_000 }).timeoutMs).toBe(300_000);
  });
  it("rejects a batch_id with characters outside the id alphabet", () =>
    rejects({ ...ok, batchId: "a/b" }, /^batch_id: may contain only/));
  it("rejects a batch_id over 128 characters", () =>
    rejects({ ...ok, batchId: "x".repeat(129) }, /^batch_id: must be at most 128/));
  it("rejects metadata that is not an object", () =>
    rejects({ ...ok, metadata: [1] }, /^metadata: expected a JSON object/));
  it("rejects a model_id that is not a string", () =>
    rejects({ ...ok, metadata: { model_id: 3 } }, /^metadata\.model_id: expected a string/));
  it("rejects an unknown model, listing the models", () =>
    rejects(
      { ...ok, metadata: { model_id: "gpt" } },
      /model "gpt" not found; available models: default, fixed4, broken/,
      ModelNotFoundError,
    ));
  it("rejects a model that failed to load, with the reason", () =>
    rejects(
      { ...ok, metadata: { model_id: "broken" } },
      /not a valid ONNX graph/,
      ModelUnavailableError,
    ));
  it("rejects an input length the model cannot take", () =>
    rejects(
      { data: [{ input: [1, 2, 3, 4] }, { input: [1, 2, 3] }], metadata: { model_id: "fixed4" } },
      /^data\[1\]\.input: expected 4 numbers for model "fixed4", got 3/,
    ));
  it("rejects a shape whose size does not match the input", () =>
    rejects(
      { data: [{ input: [1, 2, 3], shape: [2, 2] }] },
      /^data\[0\]\.shape: \[2, 2\] holds 4 numbers but input has 3/,
    ));
  it("rejects a non-integer dimension", () =>
    rejects(
      { data: [{ input: [1, 2], shape: [0.5, 4] }] },
      /^data\[0\]\.shape\[0\]: expected a positive integer/,
    ));
  it("rejects a rank the model does not take", () =>
    rejects(
      { data: [{ input: [1, 2, 3, 4], shape: [2, 2] }] },
      /^data\[0\]\.shape: model "default" takes items of shape \[\*\]/,
    ));
  it("rejects a number outside the float32 range, naming it", () =>
    rejects(
      { data: [{ input: [1, 1e39] }] },
      /^data\[0\]\.input\[1\]: 1e\+39 is outside the float32 range$/,
    ));
  it("rejects a negative number outside the float32 range", () =>
    rejects({ data: [{ input: [-3.5e38] }] }, /^data\[0\]\.input\[0\]: -3\.5e\+38 is outside/));
  it("accepts the largest float32 and converts it exactly", () => {
    const max = 3.4028234663852886e38;
    expect(
      Array.from(
        (valid({ data: [{ input: [max, -max] }] }).items[0]?.inputs[0]?.data ??
          []) as ArrayLike<number>,
      ),
    ).toEqual([max, -max]);
  });
});

describe("metadata limits", () => {
  const meta = (metadata: Record<string, unknown>) => ({ ...ok, metadata });
  it("accepts metadata within every limit", () => {
    const metadata = { user_id: "u1", tags: ["a", "b"], nested: { depth: { ok: true } } };
    expect(valid(meta(metadata)).metadata).toEqual(metadata);
  });
  it("rejects more top-level entries than allowed", () =>
    rejects(
      meta(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i]))),
      /^metadata: has 65 entries; at most 64 are allowed$/,
    ));
  it("rejects a key longer than allowed, quoting only its start", () => {
    const key = "k".repeat(5000);
    expect(() => valid(meta({ [key]: 1 }))).toThrow(
      /^metadata: key "k{64}"… \(5000 characters\) is longer than 128 characters$/,
    );
  });
  it("rejects a string value longer than allowed, naming where it is", () =>
    rejects(
      meta({ user: { name: "x".repeat(METADATA_LIMITS.maxStringChars + 1) } }),
      /^metadata\.user\.name: is 4097 characters long; at most 4096 are allowed$/,
    ));
  it("rejects nesting deeper than allowed", () => {
    let deep: unknown = 1;
    for (let i = 0; i < 9; i++) deep = { d: deep };
    rejects(meta({ deep }), /^metadata\.deep(\.d)*: nests deeper than 8 levels$/);
  });
  it("rejects metadata larger than allowed in total", () =>
    rejects(
      meta(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, "v".repeat(2000)]))),
      /^metadata: is larger than the 16384 bytes allowed as JSON$/,
    ));
  it("rejects a 2 MB metadata object without walking all of it", () => {
    const values = Array.from({ length: 1000 }, () => "v".repeat(2000));
    rejects(meta({ values }), /^metadata: is larger than the 16384 bytes allowed/);
  });
});

describe("lookups", () => {
  it("accepts a valid batch_id", () =>
    expect(validateBatchId("batch_1:a.b-c")).toBe("batch_1:a.b-c"));
  it("requires a batch_id", () =>
    expect(() => validateBatchId("")).toThrow(/^batch_id: is required$/));
  it("rejects a 15 MB batch_id with a message of bounded length", () => {
    const lookup = () => validateBatchId("x".repeat(15 * 1024 * 1024));
    expect(lookup).toThrow(InvalidInputError);
    expect(lookup).toThrow(/^batch_id: must be at most 128 characters, got 15728640$/);
  });
  it("rejects a page_token this server could not have issued", () => {
    expect(() => validateListFilter({ pageToken: "a/b" })).toThrow(/^page_token: is not a token/);
    expect(() => validateListFilter({ pageToken: "x".repeat(10_000) })).toThrow(/^page_token:/);
  });
  it("quotes at most the start of a long unknown status", () =>
    expect(() => validateListFilter({ status: "s".repeat(100_000) })).toThrow(
      /got "s{64}"… \(100000 characters\)$/,
    ));
});
