/**
 * How a Redis connection that serves requests behaves, for the store and the cluster alike: a
 * call fails at once while Redis is away (never queued behind a reconnect), and fails when Redis
 * does not answer within {@link REDIS_COMMAND_TIMEOUT_MS} (a network partition leaves the socket
 * open and silent), so no caller ever waits without bound. Connections for blocking reads (BullMQ
 * workers, the relay) wait out an outage instead and are made elsewhere.
 */
import type { RedisOptions } from "ioredis";
import { StoreUnavailableError } from "../engine/index.js";

/** How long a request's Redis call may wait for an answer, ms. */
export const REDIS_COMMAND_TIMEOUT_MS = 5000;

/** See the file comment. */
export const REQUEST_CONNECTION: RedisOptions = Object.freeze({
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
});

/** Whether `error` means Redis is unreachable (the store then answers UNAVAILABLE). */
function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return (
    code === "ECONNREFUSED" ||
    code === "ECONNRESET" ||
    code === "EPIPE" ||
    code === "ETIMEDOUT" ||
    /Connection is closed|Stream isn't writeable|max retries per request|enableOfflineQueue|Command timed out|^LOADING/i.test(
      error.message,
    )
  );
}

/** Runs a store's Redis call; Redis being away becomes {@link StoreUnavailableError}. */
export async function callRedis<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (isConnectionError(error)) throw new StoreUnavailableError();
    throw error;
  }
}
