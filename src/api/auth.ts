/**
 * API keys: `X-API-Key` (the v1 API's header) or `authorization: Bearer <key>`, on every
 * protocol. A key is known only by its HMAC-SHA256 under a server secret: presented keys are
 * compared by that digest in constant time, and the owner of a batch is a prefix of it, so
 * neither the store nor the logs hold a key, and a copy of the database alone does not let
 * anyone test guesses of a key against it.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { type Principal, UnauthenticatedError } from "../engine/index.js";

/** Options of {@link createAuthenticator}. */
export interface AuthOptions {
  /** When false every request is served as one anonymous admin principal. @defaultValue true */
  readonly requireApiKey?: boolean;
  /** Accepted keys. */
  readonly apiKeys?: readonly string[];
  /**
   * Accepted keys known only by their digest under `secret` (a cluster's generated key on the
   * nodes that did not make it).
   */
  readonly apiKeyDigests?: readonly Uint8Array[];
  /**
   * Keys that may configure and see every batch (accepted too). When empty, a server with one
   * key is single-tenant and that key is its admin; with several keys nobody is.
   */
  readonly adminApiKeys?: readonly string[];
  /** Secret of the keyed hash that identifies keys and owners; the server keeps it in DATA_DIR. */
  readonly secret: Uint8Array;
}

/** Reads a header by lower-case name. */
export type HeaderGetter = (name: string) => string | null | undefined;

/** How admin rights were decided. */
export type AdminMode = "listed" | "single-key" | "none" | "anonymous";

/** Resolves request headers to a {@link Principal}, or throws {@link UnauthenticatedError}. */
export interface Authenticator {
  authenticate(header: HeaderGetter): Principal;
  /** Who is an admin: listed keys, the only key, nobody, or everyone (keys not required). */
  readonly adminMode: AdminMode;
  /** Accepted keys. */
  readonly keyCount: number;
}

interface KnownKey {
  readonly digest: Buffer;
  readonly admin: boolean;
}

const ANONYMOUS: Principal = Object.freeze({ owner: "anonymous", admin: true });

/** Bytes of the digest that form an owner id (hex: twice as many characters). */
const OWNER_BYTES = 12;

/** Builds the authenticator. */
export function createAuthenticator(options: AuthOptions): Authenticator {
  const required = options.requireApiKey ?? true;
  const admins = new Set(options.adminApiKeys ?? []);
  const keys = [...new Set([...(options.apiKeys ?? []), ...admins])];
  const digests = (options.apiKeyDigests ?? []).map((d) => Buffer.from(d));
  const adminMode: AdminMode = !required
    ? "anonymous"
    : admins.size > 0
      ? "listed"
      : keys.length + digests.length === 1
        ? "single-key"
        : "none";
  const digest = (key: string) => createHmac("sha256", options.secret).update(key).digest();
  const known: KnownKey[] = [
    ...keys.map((key) => ({
      digest: digest(key),
      admin: adminMode === "single-key" || admins.has(key),
    })),
    ...digests.map((d) => ({ digest: d, admin: adminMode === "single-key" })),
  ];
  const adminNote =
    adminMode === "none"
      ? "no key is an admin: with several keys, the admin keys are listed in ADMIN_API_KEYS"
      : "only keys listed in ADMIN_API_KEYS are admins";
  return {
    adminMode,
    keyCount: keys.length + digests.length,
    authenticate(header) {
      if (!required) return ANONYMOUS;
      const key = presentedKey(header);
      if (key === undefined) throw new UnauthenticatedError();
      const presented = digest(key);
      let match: KnownKey | undefined;
      // Every known key is compared, so the time taken does not depend on which one matched.
      for (const candidate of known)
        if (timingSafeEqual(candidate.digest, presented)) match ??= candidate;
      if (match === undefined) throw new UnauthenticatedError("unknown API key");
      const owner = presented.subarray(0, OWNER_BYTES).toString("hex");
      return match.admin ? { owner, admin: true } : { owner, admin: false, adminNote };
    },
  };
}

function presentedKey(header: HeaderGetter): string | undefined {
  const apiKey = header("x-api-key")?.trim();
  if (apiKey) return apiKey;
  const authorization = header("authorization")?.trim();
  const match = authorization === undefined ? null : /^Bearer\s+(\S+)$/i.exec(authorization);
  return match?.[1];
}
