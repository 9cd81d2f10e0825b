/**
 * The cluster on BullMQ and Redis: the engine's `Cluster` port, and the figures port on the same
 * Redis.
 */
export { RedisCluster, type RedisClusterOptions } from "./redis-cluster.js";
export { RedisFigures } from "./redis-figures.js";
