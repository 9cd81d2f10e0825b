#!/usr/bin/env node
/**
 * `batch-processor serve | models`: the command-line entry (the package's `bin`, and `npm start`).
 */
import { parseArgs } from "node:util";
import { loadConfig } from "./config/config.js";
import { startEngine } from "./engine-runtime.js";
import { readModelRepository } from "./inference/model-repository.js";
import { createLogger } from "./logger.js";

const USAGE = `usage: batch-processor <command> [flags]

commands:
  serve    start the server (engine, store, inference threads)
  models   list the models in the model repository

flags (override the environment):
  --host <addr>        API_HOST
  --port <n>           API_PORT
  --grpc-port <n>      GRPC_PORT
  --models <dir>       MODEL_DIR
  --data-dir <dir>     DATA_DIR
`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      "grpc-port": { type: "string" },
      models: { type: "string" },
      "data-dir": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const command = positionals[0];
  if (values.help === true || command === undefined) {
    process.stdout.write(USAGE);
    return command === undefined && values.help !== true ? 2 : 0;
  }
  const config = loadConfig(process.env, {
    host: values.host,
    port: values.port,
    grpcPort: values["grpc-port"],
    models: values.models,
    dataDir: values["data-dir"],
  });
  switch (command) {
    case "serve":
      return serve(config);
    case "models":
      for (const entry of readModelRepository(config.modelDir)) {
        process.stdout.write(
          `${entry.name}\t${entry.problem ?? entry.outputKind}\t${entry.path}\n`,
        );
      }
      return 0;
    default:
      process.stderr.write(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

async function serve(config: ReturnType<typeof loadConfig>): Promise<number> {
  const logger = createLogger(config);
  const { processor, models } = await startEngine(config, logger);
  logger.info(
    {
      models: models.list().map((m) => ({ name: m.name, available: m.available })),
      threads: config.inferenceThreads,
      dataDir: config.dataDir,
    },
    "engine ready",
  );
  logger.warn(
    "the network API (REST, Connect, gRPC on API_PORT/GRPC_PORT) is not served yet; this process runs the engine and finishes recovered batches",
  );
  // Until the API servers hold the event loop open, a timer does.
  const keepAlive = setInterval(() => {}, 1 << 30);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "shutting down");
      clearInterval(keepAlive);
      resolve();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  await processor.close({ timeoutMs: config.shutdownTimeoutMs });
  logger.info("stopped");
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `batch-processor: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
