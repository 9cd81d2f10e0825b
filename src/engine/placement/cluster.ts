/**
 * What the engine needs when several nodes share one store: a batch runs on whichever node takes
 * it, not where it was submitted, and the other nodes learn of it through the cluster. Declared
 * here, implemented in `src/cluster/` (BullMQ and Redis); without one, the engine runs every
 * batch in its own process.
 */
import type { BatchRecord } from "../job-store.js";
import type { ResolvedBatchingOptions } from "../options.js";
import type { BatchView, Priority } from "../types.js";

/**
 * How a node's run of a batch came to an end: the batch "ended" (its end is stored); this node
 * shut down first and hands it back ("released": its items without an outcome are for another
 * node); or this node could not save its progress ("unsaved": the batch is taken again after a
 * pause, by whichever node, from its stored outcomes).
 */
export type RunEnd = "ended" | "released" | "unsaved";

/** What steers a node's run of a batch from outside. */
export interface RunControl {
  /** Aborted by a cancel from any node. */
  readonly cancel: AbortSignal;
  /**
   * Aborted when this node's hold on the batch is gone (its lock lapsed and another node may run
   * it): the run stops here at once, without an end.
   */
  readonly lost: AbortSignal;
}

/** What a node does for the cluster: the engine hands these to {@link Cluster.start}. */
export interface ClusterNode {
  /** Runs the stored batch `pk` here, from the items that have no outcome, until its {@link RunEnd}. */
  run(pk: number, control: RunControl): Promise<RunEnd>;
  /** Applies a configuration another node changed. */
  configure(options: ResolvedBatchingOptions): void;
  /** The priority weights now: the node takes batches of the classes by them. */
  weights(): Readonly<Record<Priority, number>>;
}

/** How a cancel reached a batch that does not run on this node. */
export type RemoteCancel =
  /** It was waiting to be taken and was removed: nothing runs it; the caller ends it. */
  | "removed"
  /** The node that runs it was asked to cancel it. */
  | "signalled";

/** See the file comment. */
export interface Cluster {
  /** Starts taking batches; `node` runs those this process takes. */
  start(node: ClusterNode): Promise<void>;
  /** Hands a batch just stored to the cluster, to run on whichever node takes it. */
  enqueue(record: BatchRecord): Promise<void>;
  /** Cancels a batch that does not run on this node. */
  cancel(record: BatchRecord): Promise<RemoteCancel>;
  /** Tells every node how the batch `pk`, running here, stands now (watchers and status reads). */
  publish(pk: number, view: BatchView): void;
  /** The last view the node running a batch published, if one is recent. */
  latest(pk: number): Promise<BatchView | undefined>;
  /**
   * Views of a batch as the node running it publishes them, each change, ending with a terminal
   * one (or when `signal` aborts).
   */
  watch(pk: number, signal?: AbortSignal): AsyncIterable<BatchView>;
  /** Tells every other node the batching configuration changed. */
  configured(options: ResolvedBatchingOptions): Promise<void>;
  /** Nodes taking batches now (this one included). */
  nodes(): Promise<number>;
  /** Why this node cannot serve cluster calls now (Redis unreachable), or undefined. */
  unavailable(): string | undefined;
  /** Takes no more batches (the first step of a shutdown). */
  stopTaking(): Promise<void>;
  /**
   * Closes the connections once every batch this node ran has ended or gone back (the engine
   * releases them first).
   */
  close(): Promise<void>;
}
