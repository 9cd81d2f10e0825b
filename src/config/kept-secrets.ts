/**
 * Secrets the server makes itself and keeps in DATA_DIR, so they outlive a restart: the key of
 * the owner-id hash and, when keys are required and none is configured, the generated API key.
 * Each is one file, readable by the server's user only. With `DATA_DIR=:memory:` nothing is kept
 * and each start makes new ones.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** A secret and where it is kept. */
export interface KeptSecret {
  readonly value: string;
  /** The file; undefined with `DATA_DIR=:memory:`. */
  readonly path: string | undefined;
  /** True when this start made it. */
  readonly created: boolean;
}

/** File names in DATA_DIR. */
export const SECRET_FILES = Object.freeze({
  ownerSecret: "owner-secret",
  apiKey: "api-key",
});

/** The owner-id hash key: 32 random bytes. */
export function keptOwnerSecret(dataDir: string): KeptSecret {
  return kept(dataDir, SECRET_FILES.ownerSecret, () => randomBytes(32).toString("base64url"));
}

/** The generated API key: `bp_` and 24 random bytes. */
export function keptApiKey(dataDir: string): KeptSecret {
  return kept(dataDir, SECRET_FILES.apiKey, () => `bp_${randomBytes(24).toString("base64url")}`);
}

function kept(dataDir: string, name: string, make: () => string): KeptSecret {
  if (dataDir === ":memory:") return { value: make(), path: undefined, created: true };
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, name);
  const existing = read(path);
  if (existing !== undefined) return { value: existing, path, created: false };
  const value = make();
  try {
    // `wx`: never overwrite a secret another start wrote meanwhile; read that one instead.
    writeFileSync(path, `${value}\n`, { mode: 0o600, flag: "wx" });
  } catch (error) {
    const raced = (error as NodeJS.ErrnoException).code === "EEXIST" ? read(path) : undefined;
    if (raced === undefined) throw error;
    return { value: raced, path, created: false };
  }
  return { value, path, created: true };
}

function read(path: string): string | undefined {
  try {
    const value = readFileSync(path, "utf8").trim();
    if (value.length === 0) throw new Error(`${path} is empty; delete it to make a new one`);
    return value;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}
