#!/usr/bin/env node
/**
 * `batch-processor`: the command-line entry (the package's `bin`, and `npm start`). `serve` runs
 * the server; the other commands are clients of a running one (`src/cli/commands.ts`).
 */
import { parseArgs } from "node:util";
import { CLIENT_COMMANDS, CLIENT_FLAGS, runClientCommand, UsageError } from "./cli/commands.js";
import { loadConfig } from "./config/config.js";
import { readModelRepository } from "./inference/model-repository.js";

/** The server's entry, imported by `serve` alone (the bundled CLI leaves it a separate file). */
const SERVE_MODULE = "./serve.js";

const USAGE = `usage: batch-processor <command> [flags]

commands:
  serve    start the server: REST/Connect/gRPC-Web on API_PORT, gRPC on GRPC_PORT
  models --local
           list the models in the local model repository (MODEL_DIR)
${Object.values(CLIENT_COMMANDS)
  .map((line) => `  ${line}`)
  .join("\n")}

${CLIENT_FLAGS}
server flags (override the environment):
  --host <addr>        API_HOST
  --port <n>           API_PORT
  --grpc-port <n>      GRPC_PORT
  --models <dir>       MODEL_DIR
  --data-dir <dir>     DATA_DIR
`;

async function main(argv: string[]): Promise<number> {
  const first = argv[0];
  const local = argv.includes("--local");
  if (first !== undefined && Object.hasOwn(CLIENT_COMMANDS, first) && !local) {
    try {
      return await runClientCommand(first, argv);
    } catch (error) {
      const parseError = String((error as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS");
      if (!(error instanceof UsageError) && !parseError) throw error;
      process.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
      return 2;
    }
  }
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      "grpc-port": { type: "string" },
      models: { type: "string" },
      "data-dir": { type: "string" },
      local: { type: "boolean" },
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
    case "serve": {
      // Loaded only here: the client commands start without the server's modules.
      const { serve } = await import(SERVE_MODULE);
      return (serve as (c: typeof config) => Promise<number>)(config);
    }
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

main(process.argv.slice(2)).then(
  (code) => {
    // A client command is done: its connections (kept alive for reuse) must not hold the exit.
    if (process.argv[2] !== "serve") process.exit(code);
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `batch-processor: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
