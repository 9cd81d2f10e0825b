/**
 * An online model of model-batch execution time against batch size, kept per model.
 *
 * Each observed size keeps an exponentially weighted mean; a least-squares line `t = a + b * size`
 * over those means fills in sizes never seen. From it the batcher picks the batch size that gives
 * (nearly) the best throughput within a latency budget.
 */

/** Options of {@link LatencyModel}. */
export interface LatencyModelOptions {
  /** Weight of a new sample in a size's running mean, 0..1. @defaultValue 0.2 */
  smoothing?: number;
  /** Samples a size needs before its own mean is trusted over the fitted line. @defaultValue 3 */
  minSamples?: number;
  /**
   * The chosen size is the smallest whose throughput is at least this fraction of the best
   * (larger batches that buy almost nothing only add latency). @defaultValue 0.97
   */
  plateauTolerance?: number;
}

interface SizeStats {
  meanMs: number;
  samples: number;
}

/** What the batch policy needs from a latency model. */
export interface LatencyEstimator {
  /** Expected execution time of a batch of `size` items, ms; undefined before any sample. */
  estimate(size: number): number | undefined;
  /** Best batch size in `1..maxSize` whose expected time fits `budgetMs`. */
  bestBatchSize(maxSize: number, budgetMs: number): number;
  /** Batches of exactly `size` observed so far. */
  samples(size: number): number;
}

/** Online per-model latency model; see the file comment. */
export class LatencyModel implements LatencyEstimator {
  readonly #sizes = new Map<number, SizeStats>();
  readonly #smoothing: number;
  readonly #minSamples: number;
  readonly #tolerance: number;
  #fit: { a: number; b: number } | undefined;
  /** The last answer without a latency budget (estimates ask it per request), until the next sample. */
  #unbounded: { maxSize: number; size: number } | undefined;

  constructor(options: LatencyModelOptions = {}) {
    this.#smoothing = options.smoothing ?? 0.2;
    this.#minSamples = options.minSamples ?? 3;
    this.#tolerance = options.plateauTolerance ?? 0.97;
  }

  /** Records one executed batch. Non-positive or non-finite samples are ignored. */
  observe(size: number, ms: number): void {
    if (!(size >= 1) || !Number.isFinite(ms) || ms < 0) return;
    const stats = this.#sizes.get(size);
    if (stats === undefined) this.#sizes.set(size, { meanMs: ms, samples: 1 });
    else {
      stats.meanMs += (ms - stats.meanMs) * this.#smoothing;
      stats.samples++;
    }
    this.#fit = undefined;
    this.#unbounded = undefined;
  }

  samples(size: number): number {
    return this.#sizes.get(size)?.samples ?? 0;
  }

  /** Number of distinct batch sizes observed. */
  get observedSizes(): number {
    return this.#sizes.size;
  }

  /** The fitted line `{a, b}` (ms, ms per item), or undefined with fewer than two sizes. */
  line(): { a: number; b: number } | undefined {
    if (this.#fit !== undefined) return this.#fit;
    if (this.#sizes.size < 2) return undefined;
    let sw = 0;
    let sx = 0;
    let sy = 0;
    let sxx = 0;
    let sxy = 0;
    for (const [x, { meanMs: y, samples }] of this.#sizes) {
      const w = Math.min(samples, 20);
      sw += w;
      sx += w * x;
      sy += w * y;
      sxx += w * x * x;
      sxy += w * x * y;
    }
    const det = sw * sxx - sx * sx;
    if (det <= 0) return undefined;
    let b = (sw * sxy - sx * sy) / det;
    let a = (sy - b * sx) / sw;
    // Batch time never shrinks with size, and never goes below zero at size 0.
    if (b < 0) {
      b = 0;
      a = sy / sw;
    }
    if (a < 0) {
      a = 0;
      b = sxy / sxx;
    }
    this.#fit = { a, b };
    return this.#fit;
  }

  estimate(size: number): number | undefined {
    const stats = this.#sizes.get(size);
    if (stats !== undefined && stats.samples >= this.#minSamples) return stats.meanMs;
    const fit = this.line();
    if (fit !== undefined) return fit.a + fit.b * size;
    if (stats !== undefined) return stats.meanMs;
    // One size seen: assume cost proportional to size (no fixed overhead), a pessimistic guess.
    const [only] = this.#sizes;
    if (only === undefined) return undefined;
    return (only[1].meanMs * size) / only[0];
  }

  /**
   * The largest size in `1..maxSize` expected to run within `budgetMs` (1 when none is; `maxSize`
   * before anything was measured). Unlike {@link bestBatchSize} it does not trade size for
   * latency within the budget: it is for throughput work that must merely stay under a bound.
   */
  largestWithin(maxSize: number, budgetMs: number): number {
    let lo = 1;
    let hi = Math.max(1, Math.floor(maxSize));
    if ((this.estimate(hi) ?? 0) <= budgetMs) return hi;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if ((this.estimate(mid) ?? 0) <= budgetMs) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  bestBatchSize(maxSize: number, budgetMs: number): number {
    if (budgetMs !== Number.POSITIVE_INFINITY) return this.#bestBatchSize(maxSize, budgetMs);
    if (this.#unbounded?.maxSize !== maxSize)
      this.#unbounded = { maxSize, size: this.#bestBatchSize(maxSize, budgetMs) };
    return this.#unbounded.size;
  }

  #bestBatchSize(maxSize: number, budgetMs: number): number {
    const max = Math.max(1, Math.floor(maxSize));
    // Until two sizes are measured nothing is known about the curve: go large, which also measures.
    if (this.#sizes.size < 2) return max;
    const candidates = new Set<number>([max]);
    for (const size of this.#sizes.keys()) if (size <= max) candidates.add(size);
    for (let s = 1; s < max; s *= 2) candidates.add(s);
    // On the fitted line throughput s / (a + b s) rises monotonically; the smallest size within
    // the tolerance of the largest size that fits the budget has a closed form.
    const fit = this.line();
    if (fit !== undefined && fit.b > 0) {
      const top = Math.min(max, Math.floor((budgetMs - fit.a) / fit.b));
      if (top >= 1) {
        const t = this.#tolerance;
        const denominator = fit.a + fit.b * top - t * fit.b * top;
        if (denominator > 0)
          candidates.add(Math.min(top, Math.max(1, Math.ceil((t * fit.a * top) / denominator))));
        candidates.add(top);
      }
    }
    const scored: { size: number; throughput: number }[] = [];
    for (const size of candidates) {
      const t = this.estimate(size);
      if (t === undefined || t > budgetMs) continue;
      scored.push({ size, throughput: size / Math.max(t, 1e-6) });
    }
    if (scored.length === 0) return 1;
    const best = Math.max(...scored.map((s) => s.throughput));
    let choice = max;
    for (const s of scored)
      if (s.throughput >= best * this.#tolerance && s.size < choice) choice = s.size;
    return choice;
  }
}

/** Weight kept by the measured slowdown at each new batch (the last few dozen batches count). */
const SERVICE_DECAY = 0.95;
/** Saturated time seen before the measured slowdown is trusted, ms. */
const SERVICE_MIN_MS = 100;

/**
 * How much slower than their run times a model's items really finish while every thread is
 * busy, on the wall clock: what the run times alone do not show (the main thread's share of the
 * cores, the gaps between batches). A decayed ratio of the time elapsed between batch ends to
 * the time the latency model gives those batches over the threads, counting only gaps during
 * which the threads were saturated. A ratio, not a rate: it holds when the batch size changes
 * (a configuration, or a backlog that fills larger batches), which a rate measured at another
 * size would not.
 */
export class ServiceRate {
  #observedMs = 0;
  #expectedMs = 0;
  /** Saturated time seen in all (not decayed): whether there is enough to go by. */
  #seenMs = 0;
  #lastAt: number | undefined;

  /**
   * A batch ended at `now`; `saturated`: every thread was busy up to then; `expectedMs`: its
   * run time by the latency model over the threads (undefined before one was measured).
   */
  record(now: number, saturated: boolean, expectedMs: number | undefined): void {
    if (saturated && this.#lastAt !== undefined && expectedMs !== undefined) {
      const gap = Math.max(0, now - this.#lastAt);
      this.#observedMs = this.#observedMs * SERVICE_DECAY + gap;
      this.#expectedMs = this.#expectedMs * SERVICE_DECAY + expectedMs;
      this.#seenMs += gap;
    }
    this.#lastAt = now;
  }

  /**
   * The threads are no longer all busy: the time until the next batch end is not saturated time,
   * so the next end only starts a new gap.
   */
  pause(): void {
    this.#lastAt = undefined;
  }

  /** Wall time per expected time (≥ 0), once enough saturated time has been seen. */
  slowdown(): number | undefined {
    return this.#seenMs >= SERVICE_MIN_MS && this.#expectedMs > 0
      ? this.#observedMs / this.#expectedMs
      : undefined;
  }
}

/**
 * What the batcher has measured of each model: its run times by batch size and how much slower
 * its items really finish while the threads are saturated (created on first use).
 */
export class ModelTimings {
  readonly #latency = new Map<string, LatencyModel>();
  readonly #service = new Map<string, ServiceRate>();

  /** The latency model of `model`. */
  latencyOf(model: string): LatencyModel {
    let m = this.#latency.get(model);
    if (m === undefined) {
      m = new LatencyModel();
      this.#latency.set(model, m);
    }
    return m;
  }

  /** The measured slowdown of `model` (see {@link ServiceRate}), once there is one. */
  slowdown(model: string): number | undefined {
    return this.#service.get(model)?.slowdown();
  }

  /**
   * A batch of `size` items of `model` ran `ms` on its thread and ended at `now`, on threads of
   * which `threads` there are, all busy until then when `saturated`. Returns the model's service
   * rate (paused by the caller when those threads stop being busy).
   */
  record(
    model: string,
    size: number,
    ms: number,
    at: { now: number; saturated: boolean; threads: number },
  ): ServiceRate {
    const latency = this.latencyOf(model);
    latency.observe(size, ms);
    let service = this.#service.get(model);
    if (service === undefined) {
      service = new ServiceRate();
      this.#service.set(model, service);
    }
    const expected = latency.estimate(size);
    service.record(
      at.now,
      at.saturated,
      expected === undefined ? undefined : expected / at.threads,
    );
    return service;
  }
}
