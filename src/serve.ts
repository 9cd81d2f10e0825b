/**
 * `batch-processor serve`: starts the server on the configuration and runs it until SIGTERM or
 * SIGINT. A module of its own so that the CLI's client commands never load the server.
 */
import type { loadConfig } from "./config/config.js";
import { createLogger } from "./logger.js";
import { startServer } from "./server.js";

/** Runs the server; resolves with the exit code once it has stopped. */
export async function serve(config: ReturnType<typeof loadConfig>): Promise<number> {
  const logger = createLogger(config);
  const server = await startServer(config, logger);
  const generated = server.generatedApiKey;
  if (generated !== undefined) {
    // To the terminal only: keys never go to the log.
    const where =
      generated.path === undefined
        ? "for this run only (DATA_DIR is :memory:)"
        : `kept in ${generated.path}`;
    process.stderr.write(
      generated.created && generated.value !== undefined
        ? `batch-processor: REQUIRE_API_KEY is true and API_KEYS is empty; generated an API key, ${where}:\n  ${generated.value}\n`
        : generated.value === undefined
          ? `batch-processor: REQUIRE_API_KEY is true and API_KEYS is empty; accepting the cluster's generated API key (${where}; the node that made it printed it)\n`
          : `batch-processor: REQUIRE_API_KEY is true and API_KEYS is empty; using the API key ${where}\n`,
    );
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "shutting down");
      resolve();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  await server.close();
  logger.info("stopped");
  return 0;
}
