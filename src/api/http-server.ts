/**
 * The API port: `/health` and `/ready` (no key), the REST routes, and Connect + gRPC-Web for
 * everything else, on one node:http server.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import type { Registry } from "prom-client";
import type { EngineLogger } from "../engine/logger.js";
import type { ServiceBinding } from "./call-context.js";
import { registerConnectRoutes } from "./connect-routes.js";
import { httpStatusOf, restErrorBody, toConnectError } from "./error-mapping.js";
import { JSON_READ_OPTIONS, JSON_WRITE_OPTIONS } from "./json-options.js";
import { createRestHandler } from "./rest-handler.js";

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  readonly host: string;
  readonly port: number;
  /** Largest request body or message accepted, after decompression, bytes. */
  readonly maxBodyBytes: number;
  /** The version `/health` reports. */
  readonly version: string;
  /** True once models are loaded and the store is open, false again while shutting down. */
  readonly ready: () => boolean;
  /** Serve Prometheus text at `/metrics` (absent: ENABLE_MONITORING=false, 404). */
  readonly metrics?: { readonly registry: Registry; readonly requireApiKey: boolean } | undefined;
}

/** A listening API server. */
export interface StartedHttpServer {
  readonly port: number;
  readonly server: Server;
  /** Stops accepting connections and waits for open requests (up to `timeoutMs`, then closes them). */
  close(timeoutMs: number): Promise<void>;
}

/** Starts the API server. */
export async function startHttpServer(
  binding: ServiceBinding,
  log: EngineLogger,
  options: HttpServerOptions,
): Promise<StartedHttpServer> {
  const rest = createRestHandler(binding, log, { maxBodyBytes: options.maxBodyBytes });
  const connect = connectNodeAdapter({
    routes: (router) => registerConnectRoutes(router, binding, log),
    readMaxBytes: options.maxBodyBytes,
    acceptCompression: [compressionGzip],
    jsonOptions: { ...JSON_READ_OPTIONS, ...JSON_WRITE_OPTIONS },
    fallback: (_req, res) =>
      json(res as ServerResponse, 404, { error: "not_found", message: "no such route" }),
  });
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const connectError = toConnectError(error, log, { path: req.url });
      if (!res.headersSent) json(res, httpStatusOf(connectError.code), restErrorBody(connectError));
      else res.end();
    });
  });
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/health") {
      json(res, 200, {
        status: "healthy",
        timestamp: new Date().toISOString(),
        version: options.version,
      });
      return;
    }
    if (req.method === "GET" && path === "/ready") {
      const ready = options.ready();
      json(res, ready ? 200 : 503, { status: ready ? "ready" : "not_ready" });
      return;
    }
    if (req.method === "GET" && path === "/metrics" && options.metrics !== undefined) {
      await serveMetrics(req, res, options.metrics, binding);
      return;
    }
    if (await rest(req, res)) return;
    connect(req, res);
  }
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    server,
    async close(timeoutMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
      await closed;
      clearTimeout(timer);
    },
  };
}

async function serveMetrics(
  req: IncomingMessage,
  res: ServerResponse,
  metrics: NonNullable<HttpServerOptions["metrics"]>,
  binding: ServiceBinding,
): Promise<void> {
  if (metrics.requireApiKey) {
    try {
      binding.auth.authenticate((name) => {
        const value = req.headers[name];
        return Array.isArray(value) ? value[0] : value;
      });
    } catch (error) {
      json(res, 401, {
        error: "unauthenticated",
        message: error instanceof Error ? error.message : "unauthenticated",
      });
      return;
    }
  }
  const text = await metrics.registry.metrics();
  res.writeHead(200, { "content-type": metrics.registry.contentType });
  res.end(text);
}

function json(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}
