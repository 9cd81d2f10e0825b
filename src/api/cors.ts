/**
 * Cross-origin calls from browsers (CORS), for the origins the operator lists: what a browser
 * must be told before a page of another origin may call the API with a key in a header and read
 * the answer. Keys still decide what a call may do; CORS only lets the browser make it. No origin
 * is allowed unless listed, and none is told credentials (cookies) are allowed: keys travel in
 * headers.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { cors as connectCors } from "@connectrpc/connect";

/** Headers a page may send: Connect's, gRPC-Web's, keys, and the v2 protocol's binary data. */
const ALLOWED_HEADERS = [
  ...connectCors.allowedHeaders,
  "X-API-Key",
  "Authorization",
  "Inference-Header-Content-Length",
].join(", ");

/** Headers a page may read: Connect's and gRPC-Web's, when to retry, an error's id. */
const EXPOSED_HEADERS = [
  ...connectCors.exposedHeaders,
  "Retry-After",
  "Inference-Header-Content-Length",
].join(", ");

const ALLOWED_METHODS = "GET, POST, DELETE";

/** How long a browser may keep a preflight's answer, seconds. */
const PREFLIGHT_MAX_AGE_S = 7200;

/** See the file comment; `origins` as CORS_ALLOWED_ORIGINS lists them (`*` for any). */
export class Cors {
  readonly #any: boolean;
  readonly #origins: ReadonlySet<string>;

  constructor(origins: readonly string[]) {
    this.#any = origins.includes("*");
    this.#origins = new Set(origins);
  }

  /**
   * Adds the CORS headers a listed origin's request needs; answers a preflight (`OPTIONS` with
   * `Access-Control-Request-Method`) itself and returns true then.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const origin = req.headers.origin;
    if (origin === undefined || this.#origins.size === 0) return false;
    // The answer differs by origin: caches must keep one per origin.
    if (!this.#any) res.setHeader("vary", "Origin");
    if (!(this.#any || this.#origins.has(origin))) return false;
    res.setHeader("access-control-allow-origin", this.#any ? "*" : origin);
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
      res.writeHead(204, {
        "access-control-allow-methods": ALLOWED_METHODS,
        "access-control-allow-headers": ALLOWED_HEADERS,
        "access-control-max-age": String(PREFLIGHT_MAX_AGE_S),
      });
      res.end();
      return true;
    }
    res.setHeader("access-control-expose-headers", EXPOSED_HEADERS);
    return false;
  }
}
