/**
 * The job stores: SQLite embedded (one node) and Redis (the nodes of a cluster), both passing the
 * same contract suite (`test/contract/`).
 */

export { REDIS_COMMAND_TIMEOUT_MS, REQUEST_CONNECTION } from "./redis-connection.js";
export { RedisJobStore, type RedisJobStoreOptions } from "./redis-job-store.js";
export { SqliteJobStore, type SqliteJobStoreOptions } from "./sqlite-job-store.js";
