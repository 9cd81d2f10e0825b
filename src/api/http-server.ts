/**
 * The API port: `/health`, `/ready`, `/openapi.json` and the dashboard (no key), `/metrics`,
 * the REST routes, the v1 API's WebSocket endpoint, and Connect + gRPC-Web for everything
 * else, on one node:http server with header, body and idle timeouts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { BatchProcessorService } from "../../gen/batchprocessor/v1/batch_processor_pb.js";
import type { ServiceBinding } from "./call.js";
import { createConnectHandler } from "./connect-adapter.js";
import { Cors } from "./cors.js";
import { Dashboard } from "./dashboard.js";
import { toConnectError } from "./error-mapping.js";
import { createOipRestHandler } from "./oip-rest.js";
import { openApiDocument } from "./openapi.js";
import { createRestHandler, sendError } from "./rest-handler.js";
import { createWebSocketHandler, type WebSocketLimits } from "./websocket-adapter.js";

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  readonly host: string;
  readonly port: number;
  /** Largest request body or message accepted, after decompression, bytes. */
  readonly maxBodyBytes: number;
  /** Longest a client may take to send a whole request (headers and body), ms. */
  readonly requestTimeoutMs: number;
  /** The version `/health` reports. */
  readonly version: string;
  /** Readiness: why the server cannot serve now, or an empty list when it can. */
  readonly notReady: () => readonly string[];
  /** The bounds of the WebSocket endpoint's sockets. */
  readonly webSockets: WebSocketLimits;
  /** Serve Prometheus text at `/metrics` (absent: ENABLE_MONITORING=false, 404). */
  readonly metrics?: { readonly registry: Registry; readonly requireApiKey: boolean } | undefined;
  /** Origins whose pages may call from a browser (`*` for any); none when absent. */
  readonly corsAllowedOrigins?: readonly string[] | undefined;
}

/** A listening API server. */
export interface StartedHttpServer {
  readonly port: number;
  readonly server: Server;
  /** Stops accepting connections and waits for open requests (up to `timeoutMs`, then closes them). */
  close(timeoutMs: number): Promise<void>;
}

/** Longest a client may take to send its request headers, ms. */
const HEADERS_TIMEOUT_MS = 20_000;
/** How long an idle keep-alive connection stays open between requests, ms. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** The paths whose bodies are uploads of any size: a job's lines, on REST, Connect and gRPC-Web. */
const UPLOAD_PATHS = new Set([
  "/api/batch-processor/jobs",
  `/${BatchProcessorService.typeName}/${BatchProcessorService.method.createJob.name}`,
]);

function isUpload(req: IncomingMessage): boolean {
  return req.method === "POST" && UPLOAD_PATHS.has((req.url ?? "/").split("?")[0] ?? "/");
}

/**
 * Ends a request whose body has not arrived within `ms` (408, connection closed); an upload
 * instead may take as long as it needs while it keeps sending, and ends once it stalls for `ms`.
 */
function limitBodyTime(req: IncomingMessage, res: ServerResponse, ms: number, upload: boolean) {
  if (req.complete) return;
  const expire = () => {
    if (req.complete) return;
    // The request ends once its answer has gone: a handler still reading the body (an upload)
    // sees it end, and lets go of what it began.
    if (!res.headersSent) {
      res.writeHead(408, { connection: "close", "content-length": 0 });
      res.end(() => req.destroy());
    } else req.destroy();
  };
  // An upload is watched by the bytes its socket has read (a listener of its own would start
  // the body flowing before the handler reads it).
  let read = req.socket.bytesRead;
  let lastProgress = Date.now();
  const timer = upload
    ? setInterval(
        () => {
          const now = Date.now();
          if (req.socket.bytesRead !== read) {
            read = req.socket.bytesRead;
            lastProgress = now;
          } else if (now - lastProgress >= ms) expire();
        },
        Math.min(ms, 1000),
      )
    : setTimeout(expire, ms);
  const stop = () => clearTimeout(timer);
  req.once("end", stop);
  req.once("close", stop);
}

/** Starts the API server. */
export async function startHttpServer(
  binding: ServiceBinding,
  options: HttpServerOptions,
): Promise<StartedHttpServer> {
  const rest = createRestHandler(binding, { maxBodyBytes: options.maxBodyBytes });
  const oip = createOipRestHandler(binding, { maxBodyBytes: options.maxBodyBytes });
  const connect = createConnectHandler(binding, { maxBodyBytes: options.maxBodyBytes });
  const websocket = createWebSocketHandler(binding, options.webSockets);
  const openapi = JSON.stringify(openApiDocument(BatchProcessorService, options.version));
  const dashboard = Dashboard.load(binding.log);
  const server = createServer(
    {
      headersTimeout: Math.min(HEADERS_TIMEOUT_MS, options.requestTimeoutMs),
      // The body's time is kept per request below: an upload of a job may take as long as it
      // keeps sending.
      requestTimeout: 0,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      // How often the timeouts above are checked; the default (30 s) lets a slow body linger.
      connectionsCheckingInterval: 1000,
    },
    (req, res) => {
      limitBodyTime(req, res, options.requestTimeoutMs, isUpload(req));
      handle(req, res).catch((error: unknown) =>
        sendError(req, res, toConnectError(error, binding.log, { path: req.url })),
      );
    },
  );
  const cors = new Cors(options.corsAllowedOrigins ?? []);
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (cors.handle(req, res)) return;
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const probe = req.method === "GET" || req.method === "HEAD";
    if (probe && path === "/health") {
      json(req, res, 200, {
        status: "healthy",
        timestamp: new Date().toISOString(),
        version: options.version,
      });
      return;
    }
    if (probe && path === "/ready") {
      const reasons = options.notReady();
      json(
        req,
        res,
        reasons.length === 0 ? 200 : 503,
        reasons.length === 0 ? { status: "ready" } : { status: "not_ready", reasons },
      );
      return;
    }
    if (probe && path === "/openapi.json") {
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(openapi),
      });
      res.end(req.method === "HEAD" ? undefined : openapi);
      return;
    }
    if (probe && dashboard.serve(req, res, path)) return;
    if (probe && path === "/metrics" && options.metrics !== undefined) {
      await serveMetrics(req, res, options.metrics, binding);
      return;
    }
    if (await oip(req, res)) return;
    if (await rest(req, res)) return;
    connect(req, res);
  }
  server.on("upgrade", (req, socket, head) => {
    if (!websocket.upgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    server,
    async close(timeoutMs) {
      websocket.close();
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
      sendError(req, res, toConnectError(error, binding.log));
      return;
    }
  }
  const text = await metrics.registry.metrics();
  res.writeHead(200, { "content-type": metrics.registry.contentType });
  res.end(req.method === "HEAD" ? undefined : text);
}

function json(req: IncomingMessage, res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(req.method === "HEAD" ? undefined : text);
}
