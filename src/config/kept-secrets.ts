/**
 * Secrets the server keeps, so they outlive a restart: the key of the owner-id hash and, when
 * keys are required and none is configured, the generated API key. A single node takes the
 * owner secret from OWNER_SECRET or keeps one it made in a file in DATA_DIR, readable by the
 * server's user only, as it keeps the generated key (with `DATA_DIR=:memory:` nothing is kept and
 * each start makes new ones). The nodes of a cluster must agree on them, and nothing in their
 * shared Redis may let a copy of it test guesses of a key: the owner secret comes from the
 * operator (OWNER_SECRET, required), and the first node keeps only the generated key's keyed
 * digest there (it prints the key once; the other nodes accept it by that digest).
 */
import { createHmac, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";

/** A secret and where it is kept. */
export interface KeptSecret {
  /** The secret; undefined for a cluster's generated key on the nodes that did not make it. */
  readonly value: string | undefined;
  /** The generated key's keyed digest (hex), which every node of a cluster accepts it by. */
  readonly digest?: string | undefined;
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
  /** OWNER_SECRET; empty when not set. */
  readonly ownerSecret: string;
}

/** Shortest OWNER_SECRET accepted, characters. */
export const MIN_OWNER_SECRET_LENGTH = 32;

/** The keyed digest of an API key under the owner secret (hex): how a key is known. */
export function keyDigest(ownerSecret: string, key: string): string {
  return createHmac("sha256", ownerSecret).update(key).digest("hex");
}

const MAKE = {
  ownerSecret: () => randomBytes(32).toString("base64url"),
  apiKey: () => `bp_${randomBytes(24).toString("base64url")}`,
} as const;

/** The owner-id hash key and, when `withApiKey`, the generated API key. */
export async function keptSecrets(
  home: SecretHome,
  withApiKey: boolean,
): Promise<{ ownerSecret: KeptSecret & { value: string }; apiKey: KeptSecret | undefined }> {
  if (home.ownerSecret !== "" && home.ownerSecret.length < MIN_OWNER_SECRET_LENGTH)
    throw new Error(
      `OWNER_SECRET must be at least ${MIN_OWNER_SECRET_LENGTH} characters (it is ${home.ownerSecret.length})`,
    );
  if (home.redisUrl === "") {
    const ownerSecret =
      home.ownerSecret !== ""
        ? { value: home.ownerSecret, path: "OWNER_SECRET", created: false }
        : kept(home.dataDir, SECRET_FILES.ownerSecret, MAKE.ownerSecret);
    const apiKey = withApiKey ? kept(home.dataDir, SECRET_FILES.apiKey, MAKE.apiKey) : undefined;
    return { ownerSecret, apiKey };
  }
  if (home.ownerSecret === "")
    throw new Error(
      `REDIS_URL is set: set OWNER_SECRET (the same on every node, at least ${MIN_OWNER_SECRET_LENGTH} characters) so that Redis holds nothing that tests a guess of a key`,
    );
  return keptInRedis(home, withApiKey);
}

/** Legacy fields of `<prefix>:secrets`, which held the secrets themselves. */
const PLAIN_OWNER_SECRET = SECRET_FILES.ownerSecret;
const PLAIN_API_KEY = SECRET_FILES.apiKey;
/** The field that holds the generated key's digest. */
const API_KEY_DIGEST = "api-key-digest";

async function keptInRedis(
  { redisUrl, clusterPrefix, ownerSecret }: SecretHome,
  withApiKey: boolean,
): Promise<{ ownerSecret: KeptSecret & { value: string }; apiKey: KeptSecret | undefined }> {
  const key = `${clusterPrefix}:secrets`;
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on("error", () => {
    // The command below fails with the reason.
  });
  try {
    await redis.connect();
    // A cluster that kept its owner secret in Redis: OWNER_SECRET must be that one (or owners
    // would change), and then the plain copy goes.
    const plain = await redis.hget(key, PLAIN_OWNER_SECRET);
    if (plain !== null) {
      if (plain !== ownerSecret)
        throw new Error(
          `OWNER_SECRET differs from the owner secret this cluster kept in Redis (${key}, field ${PLAIN_OWNER_SECRET}): every stored batch would change owners. Set OWNER_SECRET to that value (the server then removes it from Redis), or delete the field to start over`,
        );
      await redis.hdel(key, PLAIN_OWNER_SECRET);
    }
    // A generated key kept in plain text becomes its digest.
    const plainKey = await redis.hget(key, PLAIN_API_KEY);
    if (plainKey !== null) {
      await redis.hsetnx(key, API_KEY_DIGEST, keyDigest(ownerSecret, plainKey));
      await redis.hdel(key, PLAIN_API_KEY);
    }
    const owner = { value: ownerSecret, path: "OWNER_SECRET", created: false };
    if (!withApiKey) return { ownerSecret: owner, apiKey: undefined };
    const made = MAKE.apiKey();
    const digest = keyDigest(ownerSecret, made);
    // HSETNX: the first node to start makes the key; every other node accepts it by its digest.
    const created = (await redis.hsetnx(key, API_KEY_DIGEST, digest)) === 1;
    const path = `Redis hash ${key}, field ${API_KEY_DIGEST} (its digest only)`;
    return {
      ownerSecret: owner,
      apiKey: created
        ? { value: made, digest, path, created }
        : {
            value: undefined,
            digest: (await redis.hget(key, API_KEY_DIGEST)) as string,
            path,
            created,
          },
    };
  } finally {
    redis.disconnect();
  }
}

function kept(dataDir: string, name: string, make: () => string): KeptSecret & { value: string } {
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
