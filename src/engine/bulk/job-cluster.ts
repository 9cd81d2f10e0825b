/**
 * The cluster's side of jobs, as the engine sees it (`src/cluster/` implements it on BullMQ): a
 * job's chunks handed out to the nodes, each node taking them while it has room, a chunk whose
 * node died handed to another, and the end of a job's window as a timer any node may fire.
 */
import type { Priority } from "../types.js";

/** One chunk of a job, as the cluster hands it to a node. */
export interface ChunkTask {
  readonly pk: number;
  readonly chunk: number;
}

/** What a node does with what the cluster hands it. */
export interface JobClusterNode {
  /**
   * Runs one chunk; `signal` aborts when the job is cancelled anywhere or this node stops. A
   * chunk that rejects is handed out again later (to this node or another).
   */
  runChunk(task: ChunkTask, signal: AbortSignal): Promise<void>;
  /** The completion window of job `pk` has ended. */
  expire(pk: number): Promise<void>;
}

/** See the file comment. */
export interface JobCluster {
  /** Starts taking chunks for `node`, at most `concurrency` at once. */
  start(node: JobClusterNode, concurrency: number): Promise<void>;
  /**
   * Hands out `chunks` of job `pk` (a chunk already handed out and not done is not handed out
   * twice), and sets its window's end to fire at `expiresAt`.
   */
  enqueue(
    pk: number,
    chunks: readonly number[],
    priority: Priority,
    expiresAt: number,
  ): Promise<void>;
  /** Tells every node to stop running chunks of job `pk`. */
  abort(pk: number): Promise<void>;
  /** Forgets what is left of job `pk`, which has ended (its window's timer). */
  ended(pk: number): Promise<void>;
  /** Stops taking chunks; the ones running are handed back for another node. */
  stop(): Promise<void>;
}
