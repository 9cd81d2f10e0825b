/**
 * Jobs, the engine's room for a data set of any size: its rules, its persistence port, the
 * feeder that pulls its chunks through the batcher, and the face callers use. (The `jobs/` room
 * is a batch's life; a batch is the unit of online work, a job the unit of a data set.)
 */

export type { ChunkRunner } from "./chunk-run.js";
export type { ChunkTask, JobCluster, JobClusterNode } from "./job-cluster.js";
export type { JobData, JobListQuery, JobWrite, NewJob } from "./job-data.js";
export { JOB_FAILURES } from "./job-failures.js";
export { CHUNK_LINES, COMPLETION_WINDOW_MS, parseWindow } from "./job-spec.js";
export * from "./job-types.js";
export { type JobResultLine, Jobs, type JobsOptions } from "./jobs.js";
