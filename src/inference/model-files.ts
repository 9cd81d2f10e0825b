/**
 * A model version's files as the threads load them: model.onnx and the external data files the
 * model names, read once into shared memory that every thread reads without a copy of its own.
 */
import { open, realpath } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { externalDataLocations } from "./external-data.js";
import type { WorkerModelVersion } from "./messages.js";
import type { RepositoryEntry } from "./model-repository.js";

/**
 * Reads a version's files: model.onnx, and every external data file it names, each of which must
 * lie in the model's own folder (symbolic links resolved); the thread hands them all to ONNX
 * Runtime, which then reads nothing from disk itself. A model that names a file elsewhere, or one
 * that is missing, does not load, and the reason names the model's own path for it, never the
 * server's.
 */
export async function readVersion(entry: RepositoryEntry): Promise<WorkerModelVersion> {
  const bytes = await readShared(entry.path);
  const folder = await realpath(dirname(entry.path));
  const externalData = [];
  let locations: string[];
  try {
    locations = externalDataLocations(bytes);
  } catch (error) {
    throw new ModelFileError(error instanceof Error ? error.message : String(error));
  }
  for (const location of locations) {
    const inside = await insideFolder(folder, location);
    if (inside === undefined)
      throw new ModelFileError(
        `external data ${JSON.stringify(location)} is not a file inside the model's folder`,
      );
    externalData.push({ path: location, bytes: await readShared(inside) });
  }
  return {
    inputName: entry.inputName,
    outputName: entry.outputName,
    inputShape: entry.inputShape,
    outputKind: entry.outputKind,
    padding: entry.padding,
    executionProviders: entry.executionProviders,
    bytes,
    externalData,
  };
}

/** Why a model's files cannot be used, in words that name only the model's own paths. */
export class ModelFileError extends Error {
  override readonly name = "ModelFileError";
}

/** The real path of `location` when it is a file inside `folder` (a real path); else undefined. */
async function insideFolder(folder: string, location: string): Promise<string | undefined> {
  if (location === "" || isAbsolute(location) || location.includes("\0")) return undefined;
  let real: string;
  try {
    real = await realpath(resolve(folder, location));
  } catch {
    return undefined;
  }
  const rel = relative(folder, real);
  return rel !== "" && !rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel)
    ? real
    : undefined;
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
