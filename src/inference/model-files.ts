/**
 * A model version's files as the threads load them: model.onnx and the external data files the
 * model names, read once into shared memory that every thread reads without a copy of its own.
 */
import { open } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { WorkerModelVersion } from "./messages.js";
import type { RepositoryEntry } from "./model-repository.js";

/**
 * Reads a version's files: model.onnx, and those of the folder's other files whose path the
 * model's bytes contain (an external data file is named in the model by its relative path).
 */
export async function readVersion(entry: RepositoryEntry): Promise<WorkerModelVersion> {
  const bytes = await readShared(entry.path);
  const model = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const externalData = [];
  for (const path of entry.otherFiles) {
    if (model.includes(path))
      externalData.push({ path, bytes: await readShared(join(dirname(entry.path), path)) });
  }
  return {
    inputName: entry.inputName,
    outputName: entry.outputName,
    inputShape: entry.inputShape,
    outputKind: entry.outputKind,
    bytes,
    externalData,
  };
}

/** Reads a file into shared memory. */
async function readShared(path: string): Promise<Uint8Array> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    const bytes = new Uint8Array(new SharedArrayBuffer(size));
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await file.read(bytes, offset, size - offset, offset);
      if (bytesRead === 0) throw new Error(`${path} ended at byte ${offset} of ${size}`);
      offset += bytesRead;
    }
    return bytes;
  } finally {
    await file.close();
  }
}
