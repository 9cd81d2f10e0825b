/**
 * Secrets the server makes itself and keeps, so they outlive a restart: the key of the owner-id
 * hash and, when keys are required and none is configured, the generated API key. A single node
 * keeps each in a file in DATA_DIR, readable by the server's user only (with `DATA_DIR=:memory:`
 * nothing is kept and each start makes new ones). The nodes of a cluster must agree on them, so
 * there they are kept in the shared Redis, and the first node to start makes them.
 */
import { createHmac, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";

/** A secret and where it is kept. */
export interface KeptSecret {
  readonly value: string;
  /** The file or Redis key, in words; undefined with `DATA_DIR=:memory:`. */
  readonly path: string | undefined;
  /** True when this start made it. */
  readonly created: boolean;
}

/** File names in DATA_DIR. */
export const SECRET_FILES = Object.freeze({
  ownerSecret: "owner-secret",
  apiKey: "api-key",
});

/** Where secrets are kept: DATA_DIR, or the cluster's Redis when `redisUrl` is not empty. */
export interface SecretHome {
  readonly dataDir: string;
  readonly redisUrl: string;
  readonly clusterPrefix: string;
}

const MAKE = {
  ownerSecret: () => randomBytes(32).toString("base64url"),
  apiKey: () => `bp_${randomBytes(24).toString("base64url")}`,
} as const;

/** The owner-id hash key (32 random bytes) and, when `withApiKey`, the generated API key. */
export async function keptSecrets(
  home: SecretHome,
  withApiKey: boolean,
): Promise<{ ownerSecret: KeptSecret; apiKey: KeptSecret | undefined }> {
  const names = withApiKey ? (["ownerSecret", "apiKey"] as const) : (["ownerSecret"] as const);
  const secrets =
    home.redisUrl === ""
      ? names.map((name) => kept(home.dataDir, SECRET_FILES[name], MAKE[name]))
      : await keptInRedis(home, names);
  return { ownerSecret: secrets[0] as KeptSecret, apiKey: secrets[1] };
}

async function keptInRedis(
  { redisUrl, clusterPrefix }: SecretHome,
  names: readonly (keyof typeof MAKE)[],
): Promise<KeptSecret[]> {
  const key = `${clusterPrefix}:secrets`;
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on("error", () => {
    // The command below fails with the reason.
  });
  try {
    await redis.connect();
    return await Promise.all(
      names.map(async (name) => {
        // HSETNX: the first node to start makes the secret; every other node reads that one.
        const created = (await redis.hsetnx(key, SECRET_FILES[name], MAKE[name]())) === 1;
        const value = (await redis.hget(key, SECRET_FILES[name])) as string;
        return { value, path: `Redis hash ${key}, field ${SECRET_FILES[name]}`, created };
      }),
    );
  } finally {
    redis.disconnect();
  }
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

/**
 * Settings every node of a cluster must share (who holds a key, who is an admin): the first node
 * keeps a digest of each in Redis (keyed by the owner secret, so the keys cannot be guessed from
 * it), and a node whose digest differs is named here. Resolves the names of the settings that
 * differ from the cluster's; none on one node (`redisUrl` empty).
 */
export async function settingsDifferingFromCluster(
  { redisUrl, clusterPrefix }: SecretHome,
  ownerSecret: string,
  settings: Readonly<Record<string, readonly string[] | string | boolean>>,
): Promise<string[]> {
  if (redisUrl === "") return [];
  const key = `${clusterPrefix}:settings`;
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on("error", () => {
    // The command below fails with the reason.
  });
  try {
    await redis.connect();
    const differing: string[] = [];
    for (const [name, value] of Object.entries(settings)) {
      const canonical = Array.isArray(value) ? [...value].sort() : value;
      const digest = createHmac("sha256", ownerSecret)
        .update(JSON.stringify([name, canonical]))
        .digest("hex");
      await redis.hsetnx(key, name, digest);
      if ((await redis.hget(key, name)) !== digest) differing.push(name);
    }
    return differing;
  } finally {
    redis.disconnect();
  }
}
