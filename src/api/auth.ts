/**
 * API keys: `X-API-Key` (the seed's header) or `authorization: Bearer <key>`, on every protocol.
 * Keys are kept only as SHA-256 digests and compared in constant time; the owner of a batch is a
 * digest prefix of the key, so keys never reach the store or the logs.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { UnauthenticatedError } from "../engine/errors.js";
import type { Principal } from "../engine/types.js";

/** Options of {@link createAuthenticator}. */
export interface AuthOptions {
  /** When false every request is served as one anonymous admin principal. @defaultValue true */
  readonly requireApiKey?: boolean;
  /** Accepted keys. */
  readonly apiKeys?: readonly string[];
  /** Keys that may configure and see every batch; when empty, every key may. */
  readonly adminApiKeys?: readonly string[];
}

/** Reads a header by lower-case name. */
export type HeaderGetter = (name: string) => string | null | undefined;

/** Resolves request headers to a {@link Principal}, or throws {@link UnauthenticatedError}. */
export interface Authenticator {
  authenticate(header: HeaderGetter): Principal;
  /** The key generated at start when keys are required and none was configured. */
  readonly generatedKey: string | undefined;
}

interface KnownKey {
  readonly digest: Buffer;
  readonly admin: boolean;
}

const ANONYMOUS: Principal = Object.freeze({ owner: "anonymous", admin: true });

/** Builds the authenticator; with keys required and none configured it generates one. */
export function createAuthenticator(options: AuthOptions = {}): Authenticator {
  const required = options.requireApiKey ?? true;
  const admins = new Set(options.adminApiKeys ?? []);
  let keys = [...new Set([...(options.apiKeys ?? []), ...admins])];
  let generatedKey: string | undefined;
  if (required && keys.length === 0) {
    generatedKey = `bp_${randomBytes(24).toString("base64url")}`;
    keys = [generatedKey];
  }
  const known: KnownKey[] = keys.map((key) => ({
    digest: digest(key),
    admin: admins.size === 0 || admins.has(key),
  }));
  return {
    generatedKey,
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
      return { owner: presented.subarray(0, 12).toString("hex"), admin: match.admin };
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

function digest(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}
