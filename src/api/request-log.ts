/**
 * One structured log line per request, on every protocol: protocol, method, code, duration and
 * the batch id when there is one. Never a key or a header: callers pass only these fields.
 */
import { type EngineLogger, MAX_ID_LENGTH } from "../engine/index.js";

/** The fields of a request line. */
export interface RequestLogEntry {
  readonly protocol: string;
  readonly method: string;
  /** `ok` or the Connect code name (`not_found`, ...). */
  readonly code: string;
  readonly durationMs: number;
  readonly batchId?: string | undefined;
}

/** Writes the request line (info for success and client errors, warn for server errors). */
export function logRequest(log: EngineLogger, entry: RequestLogEntry): void {
  const fields = { ...entry, durationMs: Math.round(entry.durationMs * 1000) / 1000 };
  if (entry.code === "internal" || entry.code === "unknown") log.warn(fields, "request");
  // A WebSocket's subscriptions are told at debug level: the socket's own line, when it closes,
  // says what it did, so a client sending many messages cannot fill the log (see the adapter).
  else if (entry.protocol === "websocket") log.debug(fields, "request");
  else log.info(fields, "request");
}

/**
 * The `batchId` of a request or response message, if it carries a non-empty one; an id longer than
 * any valid one is cut, since the line is written before (and whether or not) the id is validated.
 */
export function batchIdOf(...messages: unknown[]): string | undefined {
  for (const message of messages) {
    const id = (message as { batchId?: unknown } | undefined)?.batchId;
    if (typeof id === "string" && id.length > 0)
      return id.length > MAX_ID_LENGTH ? `${id.slice(0, MAX_ID_LENGTH)}…` : id;
  }
  return undefined;
}
