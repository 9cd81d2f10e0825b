/** The process logger: structured JSON lines (pino) at LOG_LEVEL; secrets are redacted. */
import { pino } from "pino";
import type { ServerConfig } from "./config/config.js";

/** A pino logger; it satisfies the engine's `EngineLogger`. */
export type Logger = pino.Logger;

/** Creates the process logger. */
export function createLogger(
  config: Pick<ServerConfig, "logLevel">,
  destination?: pino.DestinationStream,
): Logger {
  return pino(
    {
      level: config.logLevel,
      base: { service: "batch-processor" },
      redact: {
        paths: [
          "apiKey",
          "api_key",
          "*.apiKey",
          "headers.authorization",
          'headers["x-api-key"]',
          "key",
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
