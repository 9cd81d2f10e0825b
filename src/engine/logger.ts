/** The logging interface the engine writes to (pino's signature, so a pino logger fits as is). */
export interface EngineLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** A logger that drops everything. */
export const NOOP_LOGGER: EngineLogger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});
