/**
 * How a Redis connection that serves requests behaves, for the store and the cluster alike: a
 * call fails at once while Redis is away (never queued behind a reconnect), and fails when Redis
 * does not answer within {@link REDIS_COMMAND_TIMEOUT_MS} (a network partition leaves the socket
 * open and silent), so no caller ever waits without bound. Connections for blocking reads (BullMQ
 * workers, the relay) wait out an outage instead and are made elsewhere.
 */
import type { RedisOptions } from "ioredis";

/** How long a request's Redis call may wait for an answer, ms. */
export const REDIS_COMMAND_TIMEOUT_MS = 5000;

/** See the file comment. */
export const REQUEST_CONNECTION: RedisOptions = Object.freeze({
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
});
