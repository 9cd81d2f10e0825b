import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildDefaultModel, buildDenseModel } from "../../scripts/lib/models.js";

describe("shipped default model", () => {
  it("is byte for byte what scripts/build-default-model.ts produces", () => {
    const committed = readFileSync(new URL("../../models/default/model.onnx", import.meta.url));
    const built = buildDefaultModel();
    expect(Buffer.from(built).equals(committed)).toBe(true);
  });

  it("is reproducible: two builds give the same bytes", () => {
    expect(Buffer.from(buildDefaultModel()).equals(Buffer.from(buildDefaultModel()))).toBe(true);
  });

  it("changes when the dense model's seed changes", () => {
    const a = Buffer.from(buildDenseModel({ layers: [4, 3], seed: 1 }));
    const b = Buffer.from(buildDenseModel({ layers: [4, 3], seed: 2 }));
    expect(a.equals(b)).toBe(false);
  });
});
