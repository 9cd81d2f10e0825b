/**
 * The only reader of `process.env`. Every setting is declared once in {@link SETTINGS}: its
 * variable, flag, default (written as the environment would write it) and meaning; bounds come
 * from the module that owns the option. One reader parses them all, and the README's table is
 * rendered from the same declarations ({@link renderSettingsTable}; a test keeps them equal).
 */
import { availableParallelism } from "node:os";
import { CLUSTER_BOUNDS } from "../cluster/redis-cluster.js";
import { BATCHING_DEFAULTS, OPTION_BOUNDS, PROCESSOR_DEFAULTS } from "../engine/options.js";
import { POOL_BOUNDS } from "../inference/piscina-pool.js";

/** Command-line flags that override the environment. */
export interface ConfigFlags {
  readonly host?: string | undefined;
  readonly port?: string | undefined;
  readonly grpcPort?: string | undefined;
  readonly models?: string | undefined;
  readonly dataDir?: string | undefined;
}

type Env = Readonly<Record<string, string | undefined>>;

/** A value that breaks its setting's rule; the reader names the variable. */
class RuleError extends Error {}

/** One setting: where it is read from, its default and meaning, and how its text is read. */
interface Setting<T> {
  readonly env: string;
  /** A second variable read when `env` is unset (the original API's name). */
  readonly alias?: string;
  readonly flag?: { readonly name: keyof ConfigFlags; readonly text: string };
  /** The default as the environment would write it, or, for one decided at start, how. */
  readonly default: string | { readonly text: string; readonly value: (env: Env) => string };
  readonly meaning: string;
  readonly parse: (text: string) => T;
}

const setting = <T>(s: Setting<T>): Setting<T> => s;

const integer =
  ([min, max]: readonly [number, number]) =>
  (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new RuleError(`must be an integer in ${min}..${max}`);
    return n;
  };

const decimal =
  ([min, max]: readonly [number, number]) =>
  (text: string): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new RuleError(`must be a number in ${min}..${max}`);
    return n;
  };

const boolean = (text: string): boolean => {
  const t = text.toLowerCase();
  if (["true", "1", "yes", "on"].includes(t)) return true;
  if (["false", "0", "no", "off"].includes(t)) return false;
  throw new RuleError("must be true or false");
};

const text = (value: string): string => value;

const list = (value: string): readonly string[] =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

/** A comma list, or `none` for the empty list. */
const noneOrList = (value: string): readonly string[] =>
  value.trim().toLowerCase() === "none" ? [] : list(value);

const oneOf =
  <T extends string>(allowed: readonly T[], aliases: Readonly<Record<string, T>> = {}) =>
  (value: string): T => {
    const v = value.toLowerCase();
    const resolved = aliases[v] ?? v;
    if (!(allowed as readonly string[]).includes(resolved))
      throw new RuleError(`must be one of ${allowed.join(", ")}`);
    return resolved as T;
  };

const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `90` (seconds), `90s`, `15m`, `24h`, `7d` or `500ms`, within `bounds` (ms). */
const duration =
  ([min, max]: readonly [number, number]) =>
  (value: string): number => {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value);
    const ms =
      match === null
        ? Number.NaN
        : Number(match[1]) * DURATION_UNITS[(match[2] ?? "s") as keyof typeof DURATION_UNITS];
    if (!Number.isFinite(ms) || ms < min || ms > max)
      throw new RuleError(
        `must be a duration of ${min / 1000} s to ${max / 86_400_000} days, like 3600, 90m or 24h`,
      );
    return Math.round(ms);
  };

/** A Redis key prefix: letters, digits, `_`, `-` and `.` (a `:` would split the key layout). */
const clusterPrefix = (value: string): string => {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(value))
    throw new RuleError("must be 1 to 64 letters, digits, `_`, `-` or `.`");
  return value;
};

const PORT: readonly [number, number] = [0, 65535];
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

/** Every setting of a server process, in the README's order. */
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
    parse: integer(PORT),
  }),
  grpcPort: setting({
    env: "GRPC_PORT",
    flag: { name: "grpcPort", text: "--grpc-port" },
    default: "50051",
    meaning: "native gRPC port (0..65535)",
    parse: integer(PORT),
  }),
  inferenceThreads: setting({
    env: "INFERENCE_THREADS",
    alias: "API_WORKERS",
    default: { text: "number of cores", value: () => String(availableParallelism()) },
    meaning: `inference threads (${POOL_BOUNDS.threads.join("..")})`,
    parse: integer(POOL_BOUNDS.threads),
  }),
  intraOpNumThreads: setting({
    env: "INTRA_OP_THREADS",
    default: "1",
    meaning: `ONNX Runtime intra-op threads per session (${POOL_BOUNDS.intraOpNumThreads.join("..")})`,
    parse: integer(POOL_BOUNDS.intraOpNumThreads),
  }),
  inferenceNice: setting({
    env: "INFERENCE_NICE",
    default: "10",
    meaning: `nice value (${POOL_BOUNDS.nice.join("..")}) of the inference threads (Linux); 0 leaves them alone`,
    parse: integer(POOL_BOUNDS.nice),
  }),
  executionProviders: setting({
    env: "EXECUTION_PROVIDERS",
    default: "cuda,cpu",
    meaning: "providers in order; CPU is the fallback, logged once",
    parse: list,
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
    parse: integer([0, 86_400]),
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
  clusterPrefix: setting({
    env: "CLUSTER_PREFIX",
    default: "bp",
    meaning: "prefix of the cluster's Redis keys; two deployments on one Redis use two prefixes",
    parse: clusterPrefix,
  }),
  clusterNodeBatches: setting({
    env: "CLUSTER_NODE_BATCHES",
    default: "16",
    meaning: `batches a node holds at once, all classes together; it takes more only below this (${CLUSTER_BOUNDS.nodeBatches.join("..")})`,
    parse: integer(CLUSTER_BOUNDS.nodeBatches),
  }),
  clusterLockMs: setting({
    env: "CLUSTER_LOCK_MS",
    default: "30000",
    meaning: `how long a node's hold on a batch lasts unrenewed: a dead node's batches move on within about twice this (${CLUSTER_BOUNDS.lockMs.join("..")})`,
    parse: integer(CLUSTER_BOUNDS.lockMs),
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
    parse: integer([1024, 1024 * 1024 * 1024]),
  }),
  requestTimeoutMs: setting({
    env: "REQUEST_TIMEOUT_MS",
    default: "60000",
    meaning: "longest a client may take to send a whole request on the API port (1000..3600000)",
    parse: integer([1000, 3_600_000]),
  }),
  maxRequestsInFlight: setting({
    env: "MAX_REQUESTS_IN_FLIGHT",
    default: "1024",
    meaning: "unary calls served at once before new ones get 429 / RESOURCE_EXHAUSTED; 0 = no cap",
    parse: integer([0, 1_000_000]),
  }),
  maxEventLoopDelayMs: setting({
    env: "MAX_EVENT_LOOP_DELAY_MS",
    default: "200",
    meaning: "event-loop lag (over 3 samples 20 ms apart) past which calls are shed; 0 = off",
    parse: integer([0, 60_000]),
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
    meaning: "how long a shutdown waits for running model batches (0..3600000)",
    parse: integer([0, 3_600_000]),
  }),
} as const;

type Settings = typeof SETTINGS;

/** Every setting of a server process. */
export type ServerConfig = {
  readonly [K in keyof Settings]: ReturnType<Settings[K]["parse"]>;
};

/** Reads and validates the configuration; throws a `RangeError` naming the variable (or flag). */
export function loadConfig(env: Env = process.env, flags: ConfigFlags = {}): ServerConfig {
  const config: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const flag = s.flag === undefined ? undefined : flags[s.flag.name];
    const given =
      flag ?? present(env, s.env) ?? (s.alias === undefined ? undefined : present(env, s.alias));
    const raw = given ?? (typeof s.default === "string" ? s.default : s.default.value(env));
    const name =
      flag !== undefined
        ? s.flag?.text
        : present(env, s.env) !== undefined || s.alias === undefined
          ? s.env
          : s.alias;
    try {
      config[key] = s.parse(raw);
    } catch (error) {
      if (!(error instanceof RuleError)) throw error;
      throw new RangeError(`${name} ${error.message}, got ${JSON.stringify(raw)}`);
    }
  }
  return Object.freeze(config) as ServerConfig;
}

function present(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

/** The README's configuration table, rendered from {@link SETTINGS}. */
export function renderSettingsTable(): string {
  const rows = Object.values(SETTINGS).map((s: Setting<unknown>) => {
    const name = s.alias === undefined ? `\`${s.env}\`` : `\`${s.env}\` (alias \`${s.alias}\`)`;
    const flag = s.flag === undefined ? "" : `\`${s.flag.text}\``;
    const def = typeof s.default === "string" ? s.default : s.default.text;
    const shown = def === "" ? "empty" : typeof s.default === "string" ? `\`${def}\`` : def;
    return [name, flag, shown, s.meaning];
  });
  const header = ["variable", "flag", "default", "meaning"];
  // Columns padded to one width, as a Markdown formatter would leave them.
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
