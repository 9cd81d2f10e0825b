/**
 * A model folder for benchmarks that send to a heavy bench model and the default one: the heavy
 * model (or the one `write` builds) written into a temporary folder beside a link to the shipped
 * default, removed when the process exits.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeHeavyModel } from "../../scripts/build-bench-model.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The folder's path, for `MODEL_DIR`. */
export function heavyModelDir(write: (dir: string) => string = writeHeavyModel): string {
  const dir = mkdtempSync(join(tmpdir(), "bp-bench-models-"));
  write(dir);
  mkdirSync(join(dir, "default"));
  for (const file of ["model.onnx", "config.json"])
    symlinkSync(join(ROOT, "models", "default", file), join(dir, "default", file));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
