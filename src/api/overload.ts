/**
 * Load shedding at the edge. A flood of cheap requests is refused before it saturates the event
 * loop: admission control counts queued items, not requests, so a million 1-item submits would
 * otherwise all be served, and probes would wait behind them. A call is refused with
 * RESOURCE_EXHAUSTED and a retry hint when too many unary calls are in flight, or when the event
 * loop has lately run late by more than a bound. Probes (`/health`, `/ready`, gRPC health) never
 * pass through here.
 */
import { OverloadedError } from "../engine/index.js";

/** Options of {@link createOverloadGuard}. */
export interface OverloadOptions {
  /** Unary calls served at once; streams are not counted. 0 turns the cap off. */
  readonly maxRequestsInFlight: number;
  /** Event-loop lag above which new calls are refused, ms. 0 turns the check off. */
  readonly maxEventLoopDelayMs: number;
  /** Reads the current event-loop lag, ms. @defaultValue a sampler started by the guard */
  readonly eventLoopDelay?: EventLoopDelay;
}

/** The current event-loop lag. */
export interface EventLoopDelay {
  /** Lag of the latest sample, ms. */
  current(): number;
  stop(): void;
}

/** Admits calls; see the file comment. */
export interface OverloadGuard {
  /**
   * Admits a call or throws {@link OverloadedError}; the returned function ends it. `stream`
   * calls are checked against the lag only.
   */
  enter(stream: boolean): () => void;
  /** Unary calls in flight now. */
  readonly inFlight: number;
  close(): void;
}

/** How often the lag is sampled, ms. */
const SAMPLE_INTERVAL_MS = 20;

/**
 * Consecutive late samples that make a lag: one stall (a collection, a large request parsed) is
 * not an overloaded loop; a loop that runs late sample after sample is.
 */
const SUSTAINED_SAMPLES = 3;

/** Retry hint of a refused call: the lag bound passes in well under a second once load drops. */
const RETRY_AFTER_MS = 1000;

/**
 * Samples the event loop's lag: a timer due every {@link SAMPLE_INTERVAL_MS} records by how much
 * it ran late. The lag now is the least of the last {@link SUSTAINED_SAMPLES} samples, the one
 * under way included (a loop blocked since the last sample is late by that much already).
 */
export function sampleEventLoopDelay(): EventLoopDelay {
  let last = performance.now();
  const samples = new Array<number>(SUSTAINED_SAMPLES - 1).fill(0);
  let next = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    samples[next] = Math.max(0, now - last - SAMPLE_INTERVAL_MS);
    next = (next + 1) % samples.length;
    last = now;
  }, SAMPLE_INTERVAL_MS);
  timer.unref();
  return {
    current: () => Math.min(...samples, performance.now() - last - SAMPLE_INTERVAL_MS),
    stop: () => clearInterval(timer),
  };
}

/** Builds the guard. */
export function createOverloadGuard(options: OverloadOptions): OverloadGuard {
  const delay =
    options.eventLoopDelay ??
    (options.maxEventLoopDelayMs > 0 ? sampleEventLoopDelay() : undefined);
  let inFlight = 0;
  const release = () => {
    inFlight--;
  };
  const noop = () => {};
  return {
    get inFlight() {
      return inFlight;
    },
    enter(stream) {
      if (options.maxEventLoopDelayMs > 0 && delay !== undefined) {
        const lag = delay.current();
        if (lag > options.maxEventLoopDelayMs)
          throw new OverloadedError(
            `the server is overloaded: its event loop runs ${Math.round(lag)} ms late (MAX_EVENT_LOOP_DELAY_MS is ${options.maxEventLoopDelayMs}); retry later`,
            RETRY_AFTER_MS,
          );
      }
      if (stream) return noop;
      if (options.maxRequestsInFlight > 0 && inFlight >= options.maxRequestsInFlight)
        throw new OverloadedError(
          `the server is overloaded: ${inFlight} requests in flight (MAX_REQUESTS_IN_FLIGHT); retry later`,
          RETRY_AFTER_MS,
        );
      inFlight++;
      let open = true;
      return () => {
        if (!open) return;
        open = false;
        release();
      };
    },
    close() {
      if (options.eventLoopDelay === undefined) delay?.stop();
    },
  };
}
