/**
 * Writes the heavy benchmark model (dense 512 -> 2048 -> 2048 -> 10, fixed seed) into the
 * git-ignored `bench/models/heavy/`. Usage: `npm run build:bench-model [-- <dir>]`.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildDenseModel, denseModelConfig } from "./lib/models.js";

/** Layer widths of the heavy benchmark model. */
export const HEAVY_LAYERS = [512, 2048, 2048, 10] as const;

/** Builds the heavy model into `dir/heavy/` and returns that folder. */
export function writeHeavyModel(dir: string): string {
  const folder = join(dir, "heavy");
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, "model.onnx"), buildDenseModel({ layers: HEAVY_LAYERS, seed: 7 }));
  writeFileSync(
    join(folder, "config.json"),
    `${JSON.stringify(denseModelConfig(HEAVY_LAYERS), null, 2)}\n`,
  );
  return folder;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = resolve(
    process.argv[2] ?? fileURLToPath(new URL("../bench/models", import.meta.url)),
  );
  console.log(`wrote ${writeHeavyModel(dir)}`);
}
