/**
 * A whole server process: the engine, the API port (REST, Connect, gRPC-Web, health) and the
 * native gRPC port, with a two-tier shutdown: drain within a timeout, then stop.
 */
import { createRequire } from "node:module";
import {
  type Authenticator,
  createAuthenticator,
  createOverloadGuard,
  JobCallbacks,
  type ServiceBinding,
  startGrpcServer,
  startHttpServer,
} from "./api/index.js";
import {
  type KeptSecret,
  keptSecrets,
  type ServerConfig,
  settingsDifferingFromCluster,
} from "./config/index.js";
import { combineObservers, type EngineObserver, type ModelCatalog } from "./engine/index.js";
import { startEngine } from "./engine-runtime.js";
import type { Logger } from "./logger.js";
import {
  AnalyticsRecorder,
  BatchStats,
  createPrometheusMetrics,
  createResourceMonitor,
  NodeFigures,
} from "./metrics/index.js";
import { createBatchProcessorService, createInferenceService } from "./service/index.js";

/** A running server. */
export interface RunningServer {
  readonly apiPort: number;
  readonly grpcPort: number;
  /**
   * The server's own API key when keys are required and none is configured: made at the first
   * start and kept in DATA_DIR (`created` tells whether this start made it).
   */
  readonly generatedApiKey: KeptSecret | undefined;
  /**
   * Readiness off, no new work, running model batches finish, streams end with a final event,
   * the store is flushed and closed; within `config.shutdownTimeoutMs`.
   */
  close(): Promise<void>;
}

/** The package version: package.json is one folder up from src/, two from dist/src/. */
const VERSION = ((): string => {
  const require = createRequire(import.meta.url);
  for (const path of ["../package.json", "../../package.json"]) {
    try {
      return (require(path) as { version: string }).version;
    } catch {}
  }
  return "unknown";
})();

/** Says at start who owns batches and who may configure (never a key). */
function logAccess(logger: Logger, auth: Authenticator): void {
  if (auth.adminMode === "anonymous") {
    logger.warn({}, "REQUIRE_API_KEY is false: every caller is one anonymous admin");
    return;
  }
  logger.info(
    { keys: auth.keyCount, admins: auth.adminMode },
    "a batch belongs to the API key that submitted it; other keys get NOT_FOUND",
  );
  if (auth.adminMode === "none")
    logger.warn(
      { keys: auth.keyCount },
      "no API key is an admin (several API_KEYS and no ADMIN_API_KEYS): configure is refused and no key sees another's batches",
    );
}

/** Why each of `required` cannot serve (absent, or failed to load); empty when all can. */
function unavailableModels(models: ModelCatalog, required: readonly string[]): string[] {
  return required.flatMap((name) => {
    const model = models.get(name);
    if (model === undefined) return [`model "${name}" is not in the model repository`];
    return model.available ? [] : [`model "${name}" is unavailable: ${model.reason}`];
  });
}

/** Starts everything; resolves once both ports listen and the engine is ready. */
export async function startServer(config: ServerConfig, logger: Logger): Promise<RunningServer> {
  const prometheus = config.enableMonitoring ? createPrometheusMetrics() : undefined;
  const stats = new BatchStats();
  const analytics = new AnalyticsRecorder();
  const observers: EngineObserver[] = [stats, analytics];
  if (prometheus !== undefined) observers.push(prometheus.engine);
  const secrets = await keptSecrets(
    config,
    config.requireApiKey && config.apiKeys.length === 0 && config.adminApiKeys.length === 0,
  );
  const generated = secrets.apiKey;
  // A generated key is known by its digest where this node did not make it (a cluster's).
  const generatedDigest =
    generated?.digest === undefined ? undefined : Buffer.from(generated.digest, "hex");
  const keys = generated === undefined ? config.apiKeys : [];
  // Rights are decided per node: nodes that disagree on them would each grant their own.
  const differing = await settingsDifferingFromCluster(config, secrets.ownerSecret.value, {
    API_KEYS: generated === undefined ? keys : [generated.digest ?? generated.value ?? ""],
    ADMIN_API_KEYS: config.adminApiKeys,
    REQUIRE_API_KEY: config.requireApiKey,
  });
  if (differing.length > 0)
    throw new Error(
      `this node's ${differing.join(", ")} differ from the cluster's (set by its first node): start every node of a cluster with the same`,
    );
  const auth = createAuthenticator({
    requireApiKey: config.requireApiKey,
    apiKeys:
      generated === undefined
        ? keys
        : generatedDigest === undefined && generated.value !== undefined
          ? [generated.value]
          : [],
    apiKeyDigests: generatedDigest === undefined ? [] : [generatedDigest],
    adminApiKeys: config.adminApiKeys,
    secret: Buffer.from(secrets.ownerSecret.value),
  });
  const callbacks = new JobCallbacks({ log: logger });
  const engine = await startEngine(config, logger, combineObservers(...observers), (view, to) =>
    callbacks.send(view, to),
  );
  const { processor, models } = engine;
  prometheus?.bindStats(() => processor.stats());
  prometheus?.bindBacklog(() => processor.backlog());
  prometheus?.bindConfig(() => processor.config);
  const figures = new NodeFigures({
    figures: engine.figures,
    stats,
    analytics,
    queue: () => processor.stats().pendingByPriority,
    load: () => {
      const s = processor.stats();
      return { threads: s.threads, busyThreads: s.busyThreads };
    },
    log: logger,
  });
  await figures.start();
  const resources = createResourceMonitor();
  const guard = createOverloadGuard({
    maxRequestsInFlight: config.maxRequestsInFlight,
    maxEventLoopDelayMs: config.maxEventLoopDelayMs,
  });
  let state: "starting" | "serving" | "closing" = "starting";
  /** Why the server is not ready now: what `/ready` and the v2 protocol's ServerReady say. */
  const notReady = (): readonly string[] => {
    if (state !== "serving")
      return [state === "starting" ? "the server is starting" : "the server is shutting down"];
    const missing = unavailableModels(models, config.requiredModels);
    const cluster = processor.unavailable();
    return cluster === undefined ? missing : [...missing, cluster];
  };
  const binding: ServiceBinding = {
    impl: createBatchProcessorService({
      processor,
      models: { catalog: models, reload: engine.reloadModels },
      figures,
      resources,
      maxLineBytes: config.maxRequestBytes,
    }),
    inference: createInferenceService({
      processor,
      catalog: models,
      notReady,
      version: VERSION,
      repository: { load: engine.loadModel, unload: engine.unloadModel },
    }),
    auth,
    guard,
    log: logger,
    onRequest: prometheus?.onRequest,
  };
  // A reload can bring a required model or take it away: readiness asks the catalog each time.
  const missingModels = unavailableModels(models, config.requiredModels);
  if (missingModels.length > 0)
    logger.warn({ reasons: missingModels }, "not ready: a required model is unavailable");
  const http = await startHttpServer(binding, {
    host: config.apiHost,
    port: config.apiPort,
    maxBodyBytes: config.maxRequestBytes,
    requestTimeoutMs: config.requestTimeoutMs,
    corsAllowedOrigins: config.corsAllowedOrigins,
    webSockets: {
      maxConnections: config.wsMaxConnections,
      maxConnectionsPerKey: config.wsMaxConnectionsPerKey,
      idleTimeoutMs: config.wsIdleTimeoutMs,
      messagesPerSecond: config.wsMessagesPerSecond,
    },
    version: VERSION,
    notReady,
    metrics:
      prometheus === undefined
        ? undefined
        : { registry: prometheus.registry, requireApiKey: config.metricsRequireApiKey },
  });
  let grpc: Awaited<ReturnType<typeof startGrpcServer>>;
  try {
    grpc = await startGrpcServer(binding, {
      host: config.apiHost,
      port: config.grpcPort,
      maxMessageBytes: config.maxRequestBytes,
    });
  } catch (error) {
    await http.close(0);
    await figures.close();
    await processor.close({ timeoutMs: 0 });
    throw error;
  }
  state = "serving";
  logAccess(logger, auth);
  logger.info(
    {
      apiPort: http.port,
      grpcPort: grpc.port,
      version: VERSION,
      environment: config.apiEnv,
      inferenceThreads: config.inferenceThreads,
      onlineThreads: config.onlineThreads,
    },
    "serving",
  );
  let closing: Promise<void> | undefined;
  return {
    apiPort: http.port,
    grpcPort: grpc.port,
    generatedApiKey: generated,
    close() {
      closing ??= (async () => {
        state = "closing";
        guard.close();
        resources.close();
        await figures.close();
        grpc.setServing(false);
        const started = Date.now();
        await processor.close({ timeoutMs: config.shutdownTimeoutMs });
        await callbacks.close();
        const left = Math.max(0, config.shutdownTimeoutMs - (Date.now() - started));
        await Promise.all([http.close(left), grpc.close(left)]);
        await engine.tracing?.shutdown();
      })();
      return closing;
    },
  };
}
