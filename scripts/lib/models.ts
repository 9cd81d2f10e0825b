/**
 * The models this project builds: the shipped `default` model and the dense benchmark model.
 * Both are pure functions of their options, so the bytes are reproducible.
 */
import { createRandom, GraphBuilder, glorot, uniform } from "./onnx-builder.js";

/** Seed of the shipped default model's weights. Changing it changes the committed file. */
export const DEFAULT_MODEL_SEED = 20250115;

/**
 * The default model: a float vector of any length -> 3 class probabilities.
 *
 * Per row it reduces the vector to four features (mean, max, min, standard deviation), squashes
 * them with `tanh(0.1 * f)`, then runs two dense layers (4 -> 16 ReLU -> 3) and a Softmax.
 */
export function buildDefaultModel(): Uint8Array {
  const random = createRandom(DEFAULT_MODEL_SEED);
  const g = new GraphBuilder("default");
  const x = g.input("input", ["batch", "length"]);
  const mean = g.node("ReduceMean", [x], { axes: [1], keepdims: 1 });
  const max = g.node("ReduceMax", [x], { axes: [1], keepdims: 1 });
  const min = g.node("ReduceMin", [x], { axes: [1], keepdims: 1 });
  const centered = g.node("Sub", [x, mean]);
  const variance = g.node("ReduceMean", [g.node("Mul", [centered, centered])], {
    axes: [1],
    keepdims: 1,
  });
  const std = g.node("Sqrt", [variance]);
  const features = g.node("Concat", [mean, max, min, std], { axis: 1 });
  const scale = g.constant(new Float32Array([0.1]), [1], "scale");
  const squashed = g.node("Tanh", [g.node("Mul", [features, scale])]);
  const hidden = g.dense(squashed, glorot(random, 4, 16), uniform(random, 16, 0.1), true);
  const logits = g.dense(hidden, glorot(random, 16, 3), uniform(random, 3, 0.1), false);
  g.node("Softmax", [logits], { axis: 1 }, "probabilities");
  g.output("probabilities", ["batch", 3]);
  return g.encode();
}

/** Options of {@link buildDenseModel}. */
export interface DenseModelOptions {
  /** Layer widths, input first: `[512, 2048, 2048, 10]` is the benchmark model. */
  layers: readonly number[];
  /** Weight seed. @defaultValue 7 */
  seed?: number;
}

/** A dense ReLU network with a fixed input width that outputs logits (no Softmax). */
export function buildDenseModel(options: DenseModelOptions): Uint8Array {
  const { layers, seed = 7 } = options;
  if (layers.length < 2) throw new RangeError("layers must have at least 2 widths");
  const random = createRandom(seed);
  const g = new GraphBuilder("dense");
  let x = g.input("input", ["batch", layers[0] as number]);
  for (let i = 1; i < layers.length; i++) {
    const fanIn = layers[i - 1] as number;
    const fanOut = layers[i] as number;
    const last = i === layers.length - 1;
    x = g.dense(
      x,
      glorot(random, fanIn, fanOut),
      uniform(random, fanOut, 0.01),
      !last,
      last ? "logits" : undefined,
    );
  }
  g.output("logits", ["batch", layers.at(-1) as number]);
  return g.encode();
}

/** The config.json that goes beside a dense model built by {@link buildDenseModel}. */
export function denseModelConfig(layers: readonly number[], maxBatchSize = 256): object {
  return {
    max_batch_size: maxBatchSize,
    input_name: "input",
    output_name: "logits",
    input_shape: [layers[0]],
    output_kind: "logits",
  };
}
