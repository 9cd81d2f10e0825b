/**
 * Which catalog entry a call means: a model by name, in the version it asks for. A repository
 * may serve several versions of one model; the latest is the entry named as the model (`x`), each
 * other one the entry `x/<version>`, so stored batches keep the version they were submitted to.
 * A model of the flat layout (no version folders) answers to version "1".
 */
import { ModelNotFoundError, ModelVersionNotFoundError } from "./errors.js";
import type { ModelCatalog, ModelInfo } from "./inference-pool.js";

/** The version a model of the flat layout answers to. */
export const FLAT_VERSION = "1";

/** The version an entry answers to: its version folder's, or {@link FLAT_VERSION}. */
export function versionOf(model: ModelInfo): string {
  return model.version ?? FLAT_VERSION;
}

/** The model's name as callers use it: the entry's name without its `/<version>`. */
export function baseName(model: ModelInfo | string): string {
  const name = typeof model === "string" ? model : model.name;
  const slash = name.indexOf("/");
  return slash < 0 ? name : name.slice(0, slash);
}

/** Every entry of model `name`, the latest (`name` itself) first, then by version, newest first. */
export function versionsOf(models: ModelCatalog, name: string): ModelInfo[] {
  return models
    .list()
    .filter((m) => baseName(m) === name)
    .sort(
      (a, b) =>
        Number(b.name === name) - Number(a.name === name) ||
        Number(versionOf(b)) - Number(versionOf(a)),
    );
}

/**
 * The entry of model `name` in `version` (the latest when empty), available or not; throws
 * naming `fields.name` or `fields.version` when there is none.
 */
export function modelVersion(
  models: ModelCatalog,
  name: string,
  version: string,
  fields: { readonly name: string; readonly version: string },
): ModelInfo {
  const versions = name.includes("/") ? [] : versionsOf(models, name);
  const latest = versions[0] ?? models.get(name);
  if (latest === undefined)
    throw new ModelNotFoundError(
      name,
      [...new Set(models.list().map((m) => baseName(m)))],
      fields.name,
    );
  if (version === "") return latest;
  const match = versions.find((m) => versionOf(m) === version);
  if (match === undefined)
    throw new ModelVersionNotFoundError(
      name,
      version,
      versions.map((m) => versionOf(m)),
      fields.version,
    );
  return match;
}
