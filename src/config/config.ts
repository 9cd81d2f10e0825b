/**
 * The only reader of `process.env`: every setting of the server, typed and validated. An invalid
 * value stops the start with a message naming the variable. Every variable is listed in README.
 */
import { availableParallelism } from "node:os";

/** Every setting of a server process. */
export interface ServerConfig {
  readonly apiHost: string;
  readonly apiPort: number;
  readonly grpcPort: number;
  readonly inferenceThreads: number;
  readonly intraOpNumThreads: number;
  readonly inferenceNice: number;
  readonly executionProviders: readonly string[];
  readonly requireApiKey: boolean;
  readonly apiKeys: readonly string[];
  readonly adminApiKeys: readonly string[];
  readonly metricsRequireApiKey: boolean;
  readonly maxBatchSize: number;
  readonly maxWaitTimeMs: number;
  readonly maxQueueSize: number;
  readonly enableDynamicBatching: boolean;
  readonly maxConcurrentBatches: number;
  readonly enableMonitoring: boolean;
  readonly logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
  readonly apiEnv: string;
  readonly apiDebug: boolean;
  readonly modelDir: string;
  readonly dataDir: string;
  readonly dbSynchronous: "normal" | "full";
  readonly resultTtlMs: number;
  readonly shutdownTimeoutMs: number;
  readonly maxRequestBytes: number;
  readonly requestTimeoutMs: number;
  readonly maxRequestsInFlight: number;
  readonly maxEventLoopDelayMs: number;
  /** Models without which `/ready` answers 503. */
  readonly requiredModels: readonly string[];
}

/** Command-line flags that override the environment. */
export interface ConfigFlags {
  readonly host?: string | undefined;
  readonly port?: string | undefined;
  readonly grpcPort?: string | undefined;
  readonly models?: string | undefined;
  readonly dataDir?: string | undefined;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads and validates the configuration; throws a `RangeError` naming the variable. */
export function loadConfig(env: Env = process.env, flags: ConfigFlags = {}): ServerConfig {
  const r = new EnvReader(env);
  const apiDebug = r.bool("API_DEBUG", false);
  return Object.freeze({
    apiHost: flags.host ?? r.string("API_HOST", "0.0.0.0"),
    apiPort:
      flags.port !== undefined
        ? parsePort("--port", flags.port)
        : r.int("API_PORT", 8000, 0, 65535),
    grpcPort:
      flags.grpcPort !== undefined
        ? parsePort("--grpc-port", flags.grpcPort)
        : r.int("GRPC_PORT", 50051, 0, 65535),
    inferenceThreads: r.int(
      "INFERENCE_THREADS",
      r.int("API_WORKERS", availableParallelism(), 1, 256),
      1,
      256,
    ),
    intraOpNumThreads: r.int("INTRA_OP_THREADS", 1, 1, 256),
    inferenceNice: r.int("INFERENCE_NICE", 10, 0, 19),
    executionProviders: r.list("EXECUTION_PROVIDERS", ["cuda", "cpu"]),
    requireApiKey: r.bool("REQUIRE_API_KEY", true),
    apiKeys: r.list("API_KEYS", []),
    adminApiKeys: r.list("ADMIN_API_KEYS", []),
    metricsRequireApiKey: r.bool("METRICS_REQUIRE_API_KEY", false),
    maxBatchSize: r.int("MAX_BATCH_SIZE", 64, 1, 4096),
    maxWaitTimeMs: r.number("MAX_WAIT_TIME_MS", 50, 0, 60_000),
    maxQueueSize: r.int("MAX_QUEUE_SIZE", 10_000, 1, 10_000_000),
    enableDynamicBatching: r.bool("ENABLE_DYNAMIC_BATCHING", true),
    maxConcurrentBatches: r.int("MAX_CONCURRENT_BATCHES", 0, 0, 10_000_000),
    enableMonitoring: r.bool("ENABLE_MONITORING", true),
    logLevel: r.logLevel("LOG_LEVEL", apiDebug ? "debug" : "info"),
    apiEnv: r.string("API_ENV", "production"),
    apiDebug,
    modelDir: flags.models ?? r.string("MODEL_DIR", "./models"),
    dataDir: flags.dataDir ?? r.string("DATA_DIR", "./data"),
    dbSynchronous: r.oneOf("DB_SYNCHRONOUS", ["normal", "full"] as const, "normal"),
    resultTtlMs: r.duration("RESULT_TTL", 24 * 3600 * 1000),
    shutdownTimeoutMs: r.int("SHUTDOWN_TIMEOUT_MS", 30_000, 0, 3_600_000),
    maxRequestBytes: r.int("MAX_REQUEST_BYTES", 16 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    requestTimeoutMs: r.int("REQUEST_TIMEOUT_MS", 60_000, 1000, 3_600_000),
    maxRequestsInFlight: r.int("MAX_REQUESTS_IN_FLIGHT", 1024, 0, 1_000_000),
    maxEventLoopDelayMs: r.int("MAX_EVENT_LOOP_DELAY_MS", 200, 0, 60_000),
    requiredModels: r.noneOrList("REQUIRED_MODELS", ["default"]),
  });
}

function parsePort(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new RangeError(`${name} must be a port number in 0..65535, got ${JSON.stringify(value)}`);
  return n;
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
const LEVEL_ALIASES: Record<string, (typeof LOG_LEVELS)[number]> = {
  warning: "warn",
  critical: "fatal",
};

class EnvReader {
  constructor(private readonly env: Env) {}

  #raw(name: string): string | undefined {
    const v = this.env[name]?.trim();
    return v === undefined || v === "" ? undefined : v;
  }

  string(name: string, fallback: string): string {
    return this.#raw(name) ?? fallback;
  }

  number(name: string, fallback: number, min: number, max: number): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new RangeError(
        `${name} must be a number in ${min}..${max}, got ${JSON.stringify(raw)}`,
      );
    return n;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new RangeError(
        `${name} must be an integer in ${min}..${max}, got ${JSON.stringify(raw)}`,
      );
    return n;
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.#raw(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (["true", "1", "yes", "on"].includes(raw)) return true;
    if (["false", "0", "no", "off"].includes(raw)) return false;
    throw new RangeError(`${name} must be true or false, got ${JSON.stringify(this.env[name])}`);
  }

  list(name: string, fallback: readonly string[]): readonly string[] {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    return raw
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  }

  /** A comma list, or `none` for the empty list. */
  noneOrList(name: string, fallback: readonly string[]): readonly string[] {
    const list = this.list(name, fallback);
    return list.length === 1 && list[0]?.toLowerCase() === "none" ? [] : list;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.#raw(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(raw))
      throw new RangeError(
        `${name} must be one of ${allowed.join(", ")}, got ${JSON.stringify(raw)}`,
      );
    return raw as T;
  }

  logLevel(name: string, fallback: ServerConfig["logLevel"]): ServerConfig["logLevel"] {
    const raw = this.#raw(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    const level = LEVEL_ALIASES[raw] ?? raw;
    if (!(LOG_LEVELS as readonly string[]).includes(level))
      throw new RangeError(
        `${name} must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(raw)}`,
      );
    return level as ServerConfig["logLevel"];
  }

  /** `90` (seconds), `90s`, `15m`, `24h`, `7d` or `500ms`. */
  duration(name: string, fallbackMs: number): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallbackMs;
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(raw);
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
    const ms =
      match === null ? Number.NaN : Number(match[1]) * unit[(match[2] ?? "s") as keyof typeof unit];
    if (!Number.isFinite(ms) || ms < 1000)
      throw new RangeError(
        `${name} must be a duration of at least 1s like 3600, 90m or 24h, got ${JSON.stringify(raw)}`,
      );
    return Math.round(ms);
  }
}
