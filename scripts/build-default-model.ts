/**
 * Writes `models/default/model.onnx` (committed). Run with `npm run build:model`; a unit test
 * proves the committed file equals what this script produces.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildDefaultModel } from "./lib/models.js";

const target = fileURLToPath(new URL("../models/default/model.onnx", import.meta.url));
const bytes = buildDefaultModel();
writeFileSync(target, bytes);
console.log(`wrote ${target} (${bytes.byteLength} bytes)`);
