/**
 * The job stores: SQLite embedded (one node) and Redis (the nodes of a cluster), both passing the
 * same contract suite (`test/contract/`).
 */
export { RedisJobStore, type RedisJobStoreOptions } from "./redis-job-store.js";
export { SqliteJobStore, type SqliteJobStoreOptions } from "./sqlite-job-store.js";
