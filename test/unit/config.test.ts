import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadConfig, renderSettingsTable, SETTINGS } from "../../src/config/index.js";
import { BATCHING_DEFAULTS, PROCESSOR_DEFAULTS } from "../../src/engine/index.js";

describe("loadConfig", () => {
  it("uses the documented defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      apiHost: "0.0.0.0",
      apiPort: 8000,
      grpcPort: 50051,
      requireApiKey: true,
      maxBatchSize: 64,
      maxWaitTimeMs: 50,
      maxQueueSize: 10_000,
      enableDynamicBatching: true,
      maxConcurrentBatches: 0,
      modelDir: "./models",
      dataDir: "./data",
      resultTtlMs: 86_400_000,
      executionProviders: ["cuda", "cpu"],
      logLevel: "info",
      inferenceNice: 10,
      onlineThreads: 1,
    });
    expect(c.inferenceThreads).toBeGreaterThanOrEqual(1);
  });

  it("reads the v1 API's variables", () => {
    const c = loadConfig({
      API_PORT: "9000",
      API_WORKERS: "3",
      API_KEYS: "a, b ,c",
      REQUIRE_API_KEY: "false",
      MAX_BATCH_SIZE: "128",
      LOG_LEVEL: "INFO",
      ENABLE_DYNAMIC_BATCHING: "false",
    });
    expect(c).toMatchObject({
      apiPort: 9000,
      inferenceThreads: 3,
      apiKeys: ["a", "b", "c"],
      requireApiKey: false,
      maxBatchSize: 128,
      enableDynamicBatching: false,
    });
  });

  it("prefers INFERENCE_THREADS over API_WORKERS", () => {
    expect(loadConfig({ API_WORKERS: "3", INFERENCE_THREADS: "5" }).inferenceThreads).toBe(5);
    expect(loadConfig({ ONLINE_THREADS: "0" }).onlineThreads).toBe(0);
    expect(
      loadConfig({ CORS_ALLOWED_ORIGINS: "https://app.example.com, http://localhost:5173" })
        .corsAllowedOrigins,
    ).toEqual(["https://app.example.com", "http://localhost:5173"]);
  });

  it("lets flags override the environment", () => {
    expect(loadConfig({ API_PORT: "9000" }, { port: "0", models: "/m" })).toMatchObject({
      apiPort: 0,
      modelDir: "/m",
    });
  });

  it.each([
    ["API_PORT", "http"],
    ["API_PORT", "70000"],
    ["MAX_BATCH_SIZE", "0"],
    ["REQUIRE_API_KEY", "maybe"],
    ["LOG_LEVEL", "loud"],
    ["RESULT_TTL", "soon"],
    ["DB_SYNCHRONOUS", "off"],
    ["INFERENCE_NICE", "-5"],
    ["INFERENCE_NICE", "20"],
    ["ONLINE_THREADS", "-1"],
    ["ONLINE_THREADS", "65"],
    ["CORS_ALLOWED_ORIGINS", "https://app.example.com/"],
    ["CORS_ALLOWED_ORIGINS", "app.example.com"],
  ])("rejects %s=%s naming the variable", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^${name}`));
  });

  it.each([
    ["3600", 3_600_000],
    ["90m", 5_400_000],
    ["24h", 86_400_000],
    ["7d", 604_800_000],
  ])("reads RESULT_TTL=%s", (value, ms) => {
    expect(loadConfig({ RESULT_TTL: value }).resultTtlMs).toBe(ms);
  });

  it("maps WARNING to pino's warn and API_DEBUG to debug", () => {
    expect(loadConfig({ LOG_LEVEL: "WARNING" }).logLevel).toBe("warn");
    expect(loadConfig({ API_DEBUG: "true" }).logLevel).toBe("debug");
  });

  it("takes its engine defaults from the engine's own", () => {
    expect(loadConfig({})).toMatchObject({
      maxBatchSize: BATCHING_DEFAULTS.maxBatchSize,
      maxWaitTimeMs: BATCHING_DEFAULTS.maxWaitTimeMs,
      enableDynamicBatching: BATCHING_DEFAULTS.enableDynamicBatching,
      maxQueueSize: PROCESSOR_DEFAULTS.maxQueueSize,
      maxConcurrentBatches: PROCESSOR_DEFAULTS.maxConcurrentBatches,
      resultTtlMs: PROCESSOR_DEFAULTS.resultTtlMs,
      requiredModels: [PROCESSOR_DEFAULTS.defaultModel],
      defaultModel: PROCESSOR_DEFAULTS.defaultModel,
    });
  });

  it("requires the DEFAULT_MODEL for readiness unless REQUIRED_MODELS says otherwise", () => {
    expect(loadConfig({ DEFAULT_MODEL: "resnet" })).toMatchObject({
      defaultModel: "resnet",
      requiredModels: ["resnet"],
    });
    expect(loadConfig({ DEFAULT_MODEL: "resnet", REQUIRED_MODELS: "none" }).requiredModels).toEqual(
      [],
    );
  });

  it("reads only the variables it declares", () => {
    const read = new Set<string>();
    const env = new Proxy({} as Record<string, string | undefined>, {
      get: (_target, name) => {
        read.add(String(name));
        return undefined;
      },
    });
    loadConfig(env);
    const declared = Object.values(SETTINGS).flatMap((s) =>
      "alias" in s ? [s.env, s.alias] : [s.env],
    );
    expect([...read].sort()).toEqual([...new Set(declared)].sort());
  });

  it("is documented in docs/configuration.md exactly as declared (npm run docs:settings writes it)", () => {
    const doc = readFileSync(
      fileURLToPath(new URL("../../docs/configuration.md", import.meta.url)),
      "utf8",
    );
    const section = doc.slice(
      doc.indexOf("<!-- settings:begin -->") + "<!-- settings:begin -->".length,
      doc.indexOf("<!-- settings:end -->"),
    );
    // Cells compared trimmed: a Markdown formatter pads the tables.
    const cells = (table: string) =>
      table
        .trim()
        .split("\n")
        .map((row) => row.split("|").map((cell) => cell.trim().replace(/^-{3,}$/, "---")));
    expect(cells(section)).toEqual(cells(renderSettingsTable()));
  });
});
