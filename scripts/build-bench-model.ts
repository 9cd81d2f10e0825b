/**
 * Writes the heavy benchmark model (dense 512 -> 2048 -> 2048 -> 10, fixed seed) into the
 * git-ignored `bench/models/heavy/`; the benchmarks also build the job benchmarks' model with it.
 * Usage: `npm run build:bench-model [-- <dir>]`.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildDenseModel, denseModelConfig } from "./lib/models.js";

/** Layer widths of the heavy benchmark model. */
export const HEAVY_LAYERS = [512, 2048, 2048, 10] as const;

/**
 * The job benchmarks' model, `heavy-job`: a narrow input, so that a data set of its lines is
 * cheap to generate and upload, and a batch about as long to run as the heavy model's.
 */
export const HEAVY_JOB_MODEL = "heavy-job";
export const HEAVY_JOB_LAYERS = [64, 4096, 4096, 3] as const;

/** Builds a dense model of `layers` (weights from `seed`) into `dir/name/` and returns that folder. */
export function writeDenseBenchModel(
  dir: string,
  name: string,
  layers: readonly number[],
  seed: number,
  maxBatchSize?: number,
): string {
  const folder = join(dir, name);
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, "model.onnx"), buildDenseModel({ layers, seed }));
  writeFileSync(
    join(folder, "config.json"),
    `${JSON.stringify(denseModelConfig(layers, maxBatchSize), null, 2)}\n`,
  );
  return folder;
}

/** Builds the heavy model into `dir/heavy/` and returns that folder. */
export function writeHeavyModel(dir: string): string {
  return writeDenseBenchModel(dir, "heavy", HEAVY_LAYERS, 7);
}

/** Builds the job benchmarks' model into `dir/heavy-job/` and returns that folder. */
export function writeHeavyJobModel(dir: string, maxBatchSize?: number): string {
  return writeDenseBenchModel(dir, HEAVY_JOB_MODEL, HEAVY_JOB_LAYERS, 5, maxBatchSize);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = resolve(
    process.argv[2] ?? fileURLToPath(new URL("../bench/models", import.meta.url)),
  );
  console.log(`wrote ${writeHeavyModel(dir)}`);
}
