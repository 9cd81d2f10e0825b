/**
 * What the engine tells a tracer, so that a request can be followed through the batcher: the
 * engine knows no tracing library; `src/tracing/` implements this port with OpenTelemetry.
 */

/**
 * The trace of the request a job came with (its caller's span), opaque to the engine: the tracer
 * makes it, the engine carries it with the job's items and hands it back.
 */
export interface RequestTrace {
  readonly __requestTrace: unique symbol;
}

/** A model batch as the tracer sees it once it has ended. */
export interface TracedBatch {
  readonly model: string;
  readonly size: number;
  /** When it left for a thread and when its outcome came back, epoch ms. */
  readonly dispatchedAt: number;
  readonly endedAt: number;
  /** Its run on the thread, ms; 0 when it failed. */
  readonly inferenceMs: number;
  /** Why it failed, in the words its items get; undefined when it ran. */
  readonly error: string | undefined;
  /** The traced requests it served: when each one's items arrived, and how many it held. */
  readonly requests: readonly {
    readonly trace: RequestTrace;
    readonly arrival: number;
    readonly items: number;
  }[];
}

/** Hooks the engine calls; each must not throw. */
export interface EngineTracer {
  /** The request being served now, to carry with the job it makes; undefined when untraced. */
  current(): RequestTrace | undefined;
  /** Runs `work` (a step of the request being served, such as its admission) as a span `name`. */
  span<T>(name: string, work: () => T): T;
  /**
   * A model batch ended: its traced requests' waits, the batch and its run on the thread;
   * `work` (what its outcomes cause: store writes, answers) runs as part of the batch.
   */
  batch(batch: TracedBatch, work: () => void): void;
}
