/**
 * A small, deterministic builder for ONNX graphs, used by the scripts that produce the shipped
 * default model and the benchmark model. The same inputs always give the same bytes, so a test can
 * prove that a committed `.onnx` file is exactly what its script produces.
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;

/** Opset of every graph built here (ReduceMean/Max/Min still take `axes` as an attribute in 13). */
export const OPSET = 13;

/** mulberry32: a tiny seeded PRNG, so weights are reproducible on every machine. */
export function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Glorot-uniform weights for a dense layer `[fanIn, fanOut]`, row-major. */
export function glorot(random: () => number, fanIn: number, fanOut: number): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const out = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < out.length; i++) out[i] = (random() * 2 - 1) * limit;
  return out;
}

/** Small uniform biases in [-scale, scale]. */
export function uniform(random: () => number, length: number, scale: number): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = (random() * 2 - 1) * scale;
  return out;
}

type Dim = number | string;

/** Collects nodes and initializers, then encodes one ModelProto. */
export class GraphBuilder {
  readonly #nodes: onnxProto.onnx.INodeProto[] = [];
  readonly #initializers: onnxProto.onnx.ITensorProto[] = [];
  readonly #inputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #outputs: onnxProto.onnx.IValueInfoProto[] = [];
  #counter = 0;

  constructor(readonly name: string) {}

  /** Declares a graph input (float unless `type` says); string dims are symbolic (dynamic). */
  input(name: string, dims: readonly Dim[], type: ElementType = "float"): string {
    this.#inputs.push(valueInfo(name, dims, type));
    return name;
  }

  /** Declares a graph output (float unless `type` says). */
  output(name: string, dims: readonly Dim[], type: ElementType = "float"): void {
    this.#outputs.push(valueInfo(name, dims, type));
  }

  /** Adds a float initializer and returns its name. */
  constant(data: Float32Array, dims: readonly number[], hint = "c"): string {
    const name = `${hint}_${this.#counter++}`;
    this.#initializers.push({
      name,
      dataType: onnx.TensorProto.DataType.FLOAT,
      dims: [...dims],
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** Adds an int64 initializer (shapes, axes) and returns its name. */
  constantInt64(data: readonly number[], dims: readonly number[], hint = "i"): string {
    const name = `${hint}_${this.#counter++}`;
    const values = BigInt64Array.from(data.map((v) => BigInt(v)));
    this.#initializers.push({
      name,
      dataType: onnx.TensorProto.DataType.INT64,
      dims: [...dims],
      rawData: new Uint8Array(values.buffer),
    });
    return name;
  }

  /** Adds a node; returns the name of its (single) output unless `output` names it. */
  node(
    opType: string,
    inputs: readonly string[],
    attributes: Record<string, number | readonly number[]> = {},
    output?: string,
  ): string {
    const out = output ?? `${opType.toLowerCase()}_${this.#counter++}`;
    this.#nodes.push({
      opType,
      name: `${opType}_${this.#nodes.length}`,
      input: [...inputs],
      output: [out],
      attribute: Object.entries(attributes).map(([name, value]) => attribute(name, value)),
    });
    return out;
  }

  /** `Relu?(x @ W + b)` with weights given row-major as `[fanIn, fanOut]`. */
  dense(
    x: string,
    weights: Float32Array,
    bias: Float32Array,
    relu: boolean,
    output?: string,
  ): string {
    const fanOut = bias.length;
    const fanIn = weights.length / fanOut;
    const w = this.constant(weights, [fanIn, fanOut], "w");
    const b = this.constant(bias, [fanOut], "b");
    const sum = this.node("Add", [this.node("MatMul", [x, w]), b], {}, relu ? undefined : output);
    return relu ? this.node("Relu", [sum], {}, output) : sum;
  }

  /** Encodes the model. Deterministic: same graph, same bytes. */
  encode(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 7,
      producerName: "batch-processor/scripts",
      producerVersion: "1",
      opsetImport: [{ domain: "", version: OPSET }],
      graph: {
        name: this.name,
        node: this.#nodes,
        initializer: this.#initializers,
        input: this.#inputs,
        output: this.#outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

/** Element types a graph's inputs and outputs may be declared with here. */
export type ElementType = "float" | "float16" | "double" | "int64" | "int32" | "bool";

const ELEMENT_TYPES: Readonly<Record<ElementType, number>> = {
  float: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  double: onnx.TensorProto.DataType.DOUBLE,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
};

function valueInfo(
  name: string,
  dims: readonly Dim[],
  type: ElementType,
): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEMENT_TYPES[type],
        shape: {
          dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

function attribute(
  name: string,
  value: number | readonly number[],
): onnxProto.onnx.IAttributeProto {
  if (typeof value === "number") {
    return Number.isInteger(value)
      ? { name, type: onnx.AttributeProto.AttributeType.INT, i: value }
      : { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: value };
  }
  return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: [...value] };
}
