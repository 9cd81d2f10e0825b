import onnxProto from "onnx-proto";
import { describe, expect, it } from "vitest";
import { externalDataLocations, TooDeepError } from "../../src/inference/external-data.js";

const { onnx } = onnxProto;
const external = (location: string) => ({
  name: location,
  dataType: onnx.TensorProto.DataType.FLOAT,
  dims: [1],
  dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
  externalData: [
    { key: "offset", value: "0" },
    { key: "location", value: location },
  ],
});

function model(graph: object): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 7, graph })).finish();
}

describe("externalDataLocations", () => {
  it("finds every location: initializers, attributes, subgraphs and sparse tensors, each once", () => {
    const bytes = model({
      initializer: [external("a.bin"), external("a.bin")],
      sparseInitializer: [{ values: external("b.bin"), indices: external("c.bin") }],
      node: [
        {
          opType: "If",
          attribute: [
            { name: "t", t: external("d.bin") },
            { name: "then_branch", g: { initializer: [external("../e.bin")] } },
            { name: "ts", tensors: [external("/f.bin")] },
          ],
        },
      ],
    });
    expect(externalDataLocations(bytes).sort()).toEqual(
      ["../e.bin", "/f.bin", "a.bin", "b.bin", "c.bin", "d.bin"].sort(),
    );
  });

  it("finds none in a model without external data, or in bytes that are not a model", () => {
    expect(externalDataLocations(model({ initializer: [{ name: "w", floatData: [1] }] }))).toEqual(
      [],
    );
    expect(externalDataLocations(new TextEncoder().encode("this is not an ONNX graph"))).toEqual(
      [],
    );
  });

  it("refuses graphs nested past what it reads", () => {
    let graph: object = { initializer: [external("deep.bin")] };
    for (let k = 0; k < 70; k++)
      graph = { node: [{ opType: "If", attribute: [{ name: "g", g: graph }] }] };
    expect(() => externalDataLocations(model(graph))).toThrow(TooDeepError);
  });
});
