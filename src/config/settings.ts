/**
 * Every setting of a server process, declared once: its variable, flag, default (written as the
 * environment would write it), meaning and parser. Bounds come from the engine's options and
 * from `bounds.ts`, never from an implementation.
 */
import { availableParallelism } from "node:os";
import { BATCHING_DEFAULTS, OPTION_BOUNDS, PROCESSOR_DEFAULTS } from "../engine/index.js";
import { SETTING_BOUNDS } from "./bounds.js";
import {
  boolean,
  clusterPrefix,
  decimal,
  duration,
  integer,
  LOG_LEVELS,
  list,
  noneOrList,
  oneOf,
  origins,
  present,
  setting,
  text,
} from "./parse.js";

/** Every setting of a server process, in the order the configuration table lists them. */
export const SETTINGS = {
  apiHost: setting({
    env: "API_HOST",
    flag: { name: "host", text: "--host" },
    default: "0.0.0.0",
    meaning: "address of the API",
    parse: text,
  }),
  apiPort: setting({
    env: "API_PORT",
    flag: { name: "port", text: "--port" },
    default: "8000",
    meaning: "REST / Connect / gRPC-Web port (0..65535)",
    parse: integer(SETTING_BOUNDS.port),
  }),
  grpcPort: setting({
    env: "GRPC_PORT",
    flag: { name: "grpcPort", text: "--grpc-port" },
    default: "50051",
    meaning: "native gRPC port (0..65535)",
    parse: integer(SETTING_BOUNDS.port),
  }),
  inferenceThreads: setting({
    env: "INFERENCE_THREADS",
    alias: "API_WORKERS",
    default: { text: "number of cores", value: () => String(availableParallelism()) },
    meaning: `inference threads the models without an \`instance_count\` of their own share (${SETTING_BOUNDS.threads.join("..")})`,
    parse: integer(SETTING_BOUNDS.threads),
  }),
  onlineThreads: setting({
    env: "ONLINE_THREADS",
    default: "1",
    meaning: `threads of each thread set that run only the batches of classes with a latency target, at the server's own priority, each with a session of every model of its set (${SETTING_BOUNDS.onlineThreads.join("..")}); 0 for none`,
    parse: integer(SETTING_BOUNDS.onlineThreads),
  }),
  intraOpNumThreads: setting({
    env: "INTRA_OP_THREADS",
    default: "1",
    meaning: `ONNX Runtime intra-op threads per session (${SETTING_BOUNDS.intraOpNumThreads.join("..")})`,
    parse: integer(SETTING_BOUNDS.intraOpNumThreads),
  }),
  inferenceNice: setting({
    env: "INFERENCE_NICE",
    default: "10",
    meaning: `nice value (${SETTING_BOUNDS.nice.join("..")}) of the inference threads (Linux); 0 leaves them alone`,
    parse: integer(SETTING_BOUNDS.nice),
  }),
  executionProviders: setting({
    env: "EXECUTION_PROVIDERS",
    default: "cuda,cpu",
    meaning:
      "providers in order; CPU is the fallback, logged once and shown per model (a model's config.json may set its own)",
    parse: list,
  }),
  cudaDeviceId: setting({
    env: "CUDA_DEVICE_ID",
    default: "0",
    meaning: `the GPU the CUDA provider runs on (${SETTING_BOUNDS.cudaDeviceId.join("..")})`,
    parse: integer(SETTING_BOUNDS.cudaDeviceId),
  }),
  modelDir: setting({
    env: "MODEL_DIR",
    flag: { name: "models", text: "--models" },
    default: "./models",
    meaning: "model repository",
    parse: text,
  }),
  modelPollSeconds: setting({
    env: "MODEL_POLL_SECONDS",
    default: "0",
    meaning:
      "reload the model repository when its files change, checked every this many seconds; 0 reloads only on an admin's call",
    parse: integer(SETTING_BOUNDS.modelPollSeconds),
  }),
  defaultModel: setting({
    env: "DEFAULT_MODEL",
    default: PROCESSOR_DEFAULTS.defaultModel,
    meaning: "the model a request runs on when its `metadata.model_id` names none",
    parse: text,
  }),
  requiredModels: setting({
    env: "REQUIRED_MODELS",
    default: {
      value: (env) => present(env, "DEFAULT_MODEL") ?? PROCESSOR_DEFAULTS.defaultModel,
      text: "the `DEFAULT_MODEL`",
    },
    meaning: "models without which `/ready` answers 503; `none` for none",
    parse: noneOrList,
  }),
  dataDir: setting({
    env: "DATA_DIR",
    flag: { name: "dataDir", text: "--data-dir" },
    default: "./data",
    meaning:
      "SQLite database, the owner-id secret and a generated key (a cluster keeps these in Redis); `:memory:` keeps nothing",
    parse: text,
  }),
  redisUrl: setting({
    env: "REDIS_URL",
    default: "",
    meaning:
      "Redis of a cluster (`redis://host:6379/0`): batches are stored there and run on any node sharing it; empty: one node on SQLite",
    parse: text,
  }),
  ownerSecret: setting({
    env: "OWNER_SECRET",
    default: "",
    meaning:
      "key of the hash that identifies API keys and owners, at least 32 characters; required with REDIS_URL (the same on every node); on one node, made and kept in DATA_DIR when empty",
    parse: text,
  }),
  clusterPrefix: setting({
    env: "CLUSTER_PREFIX",
    default: "bp",
    meaning: "prefix of the cluster's Redis keys; two deployments on one Redis use two prefixes",
    parse: clusterPrefix,
  }),
  clusterNodeBatches: setting({
    env: "CLUSTER_NODE_BATCHES",
    default: "16",
    meaning: `batches a node holds at once, all classes together; it takes more only below this (${SETTING_BOUNDS.clusterNodeBatches.join("..")})`,
    parse: integer(SETTING_BOUNDS.clusterNodeBatches),
  }),
  clusterLockMs: setting({
    env: "CLUSTER_LOCK_MS",
    default: "30000",
    meaning: `how long a node's hold on a batch lasts unrenewed: a dead node's batches move on within about twice this (${SETTING_BOUNDS.clusterLockMs.join("..")})`,
    parse: integer(SETTING_BOUNDS.clusterLockMs),
  }),
  dbSynchronous: setting({
    env: "DB_SYNCHRONOUS",
    default: "normal",
    meaning: "`normal` survives a process crash; `full` also power loss (fsync per commit)",
    parse: oneOf(["normal", "full"] as const),
  }),
  resultTtlMs: setting({
    env: "RESULT_TTL",
    default: "24h",
    meaning: "how long ended batches are kept: seconds, or `90m`, `24h`, `7d`",
    parse: duration(OPTION_BOUNDS.resultTtlMs),
  }),
  maxBatchSize: setting({
    env: "MAX_BATCH_SIZE",
    default: String(BATCHING_DEFAULTS.maxBatchSize),
    meaning: `initial \`max_batch_size\` (${OPTION_BOUNDS.maxBatchSize.join("..")})`,
    parse: integer(OPTION_BOUNDS.maxBatchSize),
  }),
  maxWaitTimeMs: setting({
    env: "MAX_WAIT_TIME_MS",
    default: String(BATCHING_DEFAULTS.maxWaitTimeMs),
    meaning: `initial \`max_wait_time_ms\` (${OPTION_BOUNDS.maxWaitTimeMs.join("..")})`,
    parse: decimal(OPTION_BOUNDS.maxWaitTimeMs),
  }),
  enableDynamicBatching: setting({
    env: "ENABLE_DYNAMIC_BATCHING",
    default: String(BATCHING_DEFAULTS.enableDynamicBatching),
    meaning: "initial `enable_dynamic_batching`",
    parse: boolean,
  }),
  maxQueueSize: setting({
    env: "MAX_QUEUE_SIZE",
    default: String(PROCESSOR_DEFAULTS.maxQueueSize),
    meaning: `most waiting items over all batches (${OPTION_BOUNDS.maxQueueSize.join("..")})`,
    parse: integer(OPTION_BOUNDS.maxQueueSize),
  }),
  maxJobItems: setting({
    env: "MAX_JOB_ITEMS",
    default: String(PROCESSOR_DEFAULTS.maxJobItems),
    meaning: `most lines in one job (${OPTION_BOUNDS.maxJobItems.join("..")})`,
    parse: integer(OPTION_BOUNDS.maxJobItems),
  }),
  maxConcurrentBatches: setting({
    env: "MAX_CONCURRENT_BATCHES",
    default: String(PROCESSOR_DEFAULTS.maxConcurrentBatches),
    meaning: "most stored batches queued or processing; 0 = no limit",
    parse: integer(OPTION_BOUNDS.maxConcurrentBatches),
  }),
  maxRequestBytes: setting({
    env: "MAX_REQUEST_BYTES",
    default: String(16 * 1024 * 1024),
    meaning: "largest request body or gRPC message, after inflation (1024 .. 1 GiB)",
    parse: integer(SETTING_BOUNDS.maxRequestBytes),
  }),
  requestTimeoutMs: setting({
    env: "REQUEST_TIMEOUT_MS",
    default: "60000",
    meaning: `longest a client may take to send a whole request on the API port, or a job's upload may stall, ms (${SETTING_BOUNDS.requestTimeoutMs.join("..")})`,
    parse: integer(SETTING_BOUNDS.requestTimeoutMs),
  }),
  maxRequestsInFlight: setting({
    env: "MAX_REQUESTS_IN_FLIGHT",
    default: "1024",
    meaning: "unary calls served at once before new ones get 429 / RESOURCE_EXHAUSTED; 0 = no cap",
    parse: integer(SETTING_BOUNDS.maxRequestsInFlight),
  }),
  maxEventLoopDelayMs: setting({
    env: "MAX_EVENT_LOOP_DELAY_MS",
    default: "200",
    meaning: "event-loop lag (over 3 samples 20 ms apart) past which calls are shed; 0 = off",
    parse: integer(SETTING_BOUNDS.maxEventLoopDelayMs),
  }),
  wsMaxConnections: setting({
    env: "WS_MAX_CONNECTIONS",
    default: "1000",
    meaning: "WebSockets open at once, of every key; further upgrades get 503; 0 = no WebSockets",
    parse: integer(SETTING_BOUNDS.webSockets),
  }),
  wsMaxConnectionsPerKey: setting({
    env: "WS_MAX_CONNECTIONS_PER_KEY",
    default: "20",
    meaning: "WebSockets one key holds at once; further upgrades of that key get 429",
    parse: integer(SETTING_BOUNDS.webSockets),
  }),
  wsIdleTimeoutMs: setting({
    env: "WS_IDLE_TIMEOUT_MS",
    default: "60000",
    meaning: `a WebSocket that neither sends nor answers a ping this long is closed, ms (${SETTING_BOUNDS.webSocketIdleMs.join("..")}); pinged every third of it`,
    parse: integer(SETTING_BOUNDS.webSocketIdleMs),
  }),
  wsMessagesPerSecond: setting({
    env: "WS_MESSAGES_PER_SECOND",
    default: "20",
    meaning: `messages a WebSocket may send per second (bursts of twice that); past it the server stops reading it for a while (${SETTING_BOUNDS.webSocketMessagesPerSecond.join("..")})`,
    parse: integer(SETTING_BOUNDS.webSocketMessagesPerSecond),
  }),
  requireApiKey: setting({
    env: "REQUIRE_API_KEY",
    default: "true",
    meaning: "API keys required",
    parse: boolean,
  }),
  apiKeys: setting({
    env: "API_KEYS",
    default: "",
    meaning: "comma-separated keys",
    parse: list,
  }),
  adminApiKeys: setting({
    env: "ADMIN_API_KEYS",
    default: "",
    meaning: "comma-separated admin keys; see Security for who is an admin",
    parse: list,
  }),
  corsAllowedOrigins: setting({
    env: "CORS_ALLOWED_ORIGINS",
    default: "",
    meaning:
      "comma-separated origins (`https://app.example.com`) whose pages may call the API from a browser (CORS), or `*` for any; none when empty. Keys still decide what a call may do",
    parse: origins,
  }),
  metricsRequireApiKey: setting({
    env: "METRICS_REQUIRE_API_KEY",
    default: "false",
    meaning: "protect `/metrics`",
    parse: boolean,
  }),
  enableMonitoring: setting({
    env: "ENABLE_MONITORING",
    default: "true",
    meaning: "Prometheus endpoint",
    parse: boolean,
  }),
  apiDebug: setting({
    env: "API_DEBUG",
    default: "false",
    meaning: "raises log verbosity only",
    parse: boolean,
  }),
  logLevel: setting({
    env: "LOG_LEVEL",
    default: {
      text: "info (debug with API_DEBUG)",
      value: (env) => (boolean(env.API_DEBUG?.trim() || "false") ? "debug" : "info"),
    },
    meaning: "`trace` … `fatal`, `silent`; `INFO`, `WARNING` accepted",
    parse: oneOf(LOG_LEVELS, { warning: "warn", critical: "fatal" }),
  }),
  apiEnv: setting({
    env: "API_ENV",
    default: "production",
    meaning: "the deployment's name, in the start log line",
    parse: text,
  }),
  shutdownTimeoutMs: setting({
    env: "SHUTDOWN_TIMEOUT_MS",
    default: "30000",
    meaning: `how long a shutdown waits for running model batches, ms (${SETTING_BOUNDS.shutdownTimeoutMs.join("..")})`,
    parse: integer(SETTING_BOUNDS.shutdownTimeoutMs),
  }),
  otelTracesExporter: setting({
    env: "OTEL_TRACES_EXPORTER",
    default: "",
    meaning:
      "`otlp`: send traces over OTLP/HTTP (JSON) to the endpoint below (`http://localhost:4318` when none is set); `none`: no traces; empty: traces when an OTLP endpoint is set",
    parse: oneOf(["", "otlp", "none"] as const),
  }),
  otelEndpoint: setting({
    env: "OTEL_EXPORTER_OTLP_ENDPOINT",
    default: "",
    meaning:
      "base URL of an OTLP/HTTP receiver (`http://collector:4318`); traces go to `<it>/v1/traces`. The SDK's other `OTEL_*` variables (sampler, headers, batching, resource) apply as the OpenTelemetry specification says",
    parse: text,
  }),
  otelTracesEndpoint: setting({
    env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    default: "",
    meaning: "the full URL traces go to, instead of the one above",
    parse: text,
  }),
  otelServiceName: setting({
    env: "OTEL_SERVICE_NAME",
    default: "batch-processor",
    meaning: "`service.name` of the spans",
    parse: text,
  }),
  otelSdkDisabled: setting({
    env: "OTEL_SDK_DISABLED",
    default: "false",
    meaning: "`true`: no tracing, whatever the other `OTEL_*` say",
    parse: boolean,
  }),
} as const;
