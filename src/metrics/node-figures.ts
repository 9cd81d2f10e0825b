/**
 * A node's figures over time: its counters and analytics minutes, kept or shared through the
 * {@link Figures} port, and read back as the whole deployment's (one node's alone, or every
 * node's of a cluster merged). It samples the queue for the analytics every second, shares its
 * counters and current minutes every few seconds, and keeps its analytics every minute and at
 * close.
 */
import type { EngineLogger, Priority } from "../engine/index.js";
import type { AnalyticsRecorder, AnalyticsReport } from "./analytics.js";
import { type BatchStats, mergeSnapshots, type StatsSnapshot } from "./batch-stats.js";
import type { Figures, PeerFigures } from "./figures.js";

/** Options of {@link NodeFigures}. */
export interface NodeFiguresOptions {
  readonly figures: Figures;
  readonly stats: BatchStats;
  readonly analytics: AnalyticsRecorder;
  /** Items waiting per class now. */
  readonly queue: () => Readonly<Record<Priority, number>>;
  /** This node's inference threads and how many run a model batch now. */
  readonly load: () => { readonly threads: number; readonly busyThreads: number };
  readonly log: EngineLogger;
  /** Epoch-ms clock. @defaultValue Date.now */
  readonly clock?: () => number;
}

/** How often a node shares its counters and analytics minutes: how fresh the others' are, ms. */
const SHARE_MS = 5000;
/** A node's counters count for the cluster until this old: older, it has left. */
const STATS_FRESH_MS = 3 * SHARE_MS;
/** How often a node keeps its analytics windows, ms. */
const SAVE_MS = 60_000;
/** How often the queue length is sampled for the analytics, ms. */
const SAMPLE_MS = 1000;
/** How long a shared analytics minute is kept: a day, and a margin for the slowest reader. */
const ANALYTICS_KEEP_MS = 25 * 60 * 60_000;

const STATS = "stats";
/** The whole seconds a node's items/s is the mean of. */
const RATE_SECONDS = 5;

/** A node's counters as it shares them, with its threads' load (absent from older nodes). */
type SharedStats = StatsSnapshot & { readonly threads?: number; readonly busyThreads?: number };

/** One node's load, as {@link NodeFigures.nodes} reads it. */
export interface NodeLoad {
  readonly node: string;
  readonly threads: number;
  readonly busyThreads: number;
  readonly itemsPerSecond: number;
  /** When these figures were taken, epoch ms. */
  readonly at: number;
}

function loadOf(s: SharedStats): Omit<NodeLoad, "node" | "at"> {
  const last = (s.recent ?? []).slice(-RATE_SECONDS);
  return {
    threads: s.threads ?? 0,
    busyThreads: s.busyThreads ?? 0,
    itemsPerSecond: last.length === 0 ? 0 : last.reduce((a, b) => a + b, 0) / last.length,
  };
}
const ANALYTICS = "analytics";

/** See the file comment. */
export class NodeFigures {
  readonly #o: NodeFiguresOptions;
  readonly #clock: () => number;
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(options: NodeFiguresOptions) {
    this.#o = options;
    this.#clock = options.clock ?? Date.now;
  }

  /** Restores the analytics this node kept, then samples, shares and keeps on its timers. */
  async start(): Promise<void> {
    this.#o.analytics.restore(await this.#o.figures.load(ANALYTICS));
    const every = (ms: number, task: () => void) => {
      const timer = setInterval(task, ms);
      timer.unref();
      this.#timers.push(timer);
    };
    every(SAMPLE_MS, () => this.#o.analytics.sampleQueue(this.#o.queue()));
    every(SHARE_MS, () => void this.#share());
    every(SAVE_MS, () => void this.#save());
  }

  /** Stops the timers, sharing and keeping what was recorded since the last time. */
  async close(): Promise<void> {
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    await Promise.all([this.#share(), this.#save()]);
  }

  /**
   * The deployment's counters: this node's merged with the latest each other node shared (those
   * silent for longer than {@link STATS_FRESH_MS} have left).
   */
  async stats(): Promise<StatsSnapshot> {
    const peers = (await this.#peers()).map((peer) => peer.value as StatsSnapshot);
    return mergeSnapshots([this.#o.stats.snapshot(), ...peers]);
  }

  /**
   * Every node that shares the figures, this one first: its threads, how many are busy, and the
   * items it finished per second over its last {@link RATE_SECONDS} whole seconds (another
   * node's as it last shared them, a few seconds ago).
   */
  async nodes(): Promise<NodeLoad[]> {
    const own: NodeLoad = { ...loadOf(this.#own()), node: this.#o.figures.node, at: this.#clock() };
    const peers = (await this.#peers()).map(
      (peer): NodeLoad => ({
        ...loadOf(peer.value as SharedStats),
        node: peer.node,
        at: peer.bucket * SHARE_MS,
      }),
    );
    return [own, ...peers.sort((a, b) => a.node.localeCompare(b.node))];
  }

  /** What this node shares of itself: its counters and its threads' load. */
  #own(): SharedStats {
    return { ...this.#o.stats.snapshot(), ...this.#o.load() };
  }

  /** The latest figures each other node shared, those silent for too long left out. */
  async #peers(): Promise<PeerFigures[]> {
    const bucket = Math.floor(this.#clock() / SHARE_MS);
    const buckets = Array.from({ length: STATS_FRESH_MS / SHARE_MS }, (_, i) => bucket - i);
    const latest = new Map<string, PeerFigures>();
    for (const peer of await this.#o.figures.peers(STATS, buckets))
      if ((latest.get(peer.node)?.bucket ?? Number.NEGATIVE_INFINITY) < peer.bucket)
        latest.set(peer.node, peer);
    return [...latest.values()];
  }

  /**
   * The deployment's analytics for `period` and `metrics` (see `AnalyticsRecorder.report`):
   * this node's minutes with every other node's.
   */
  async analytics(period: string, metrics: readonly string[]): Promise<AnalyticsReport> {
    const { analytics, figures } = this.#o;
    const peers = await figures.peers(ANALYTICS, analytics.minutesOf(period));
    return analytics.report(
      period,
      metrics,
      peers.map((peer) => peer.value),
    );
  }

  async #share(): Promise<void> {
    const { figures, analytics, log } = this.#o;
    const now = this.#clock();
    const minute = Math.floor(now / 60_000);
    const shares = [
      figures.share(STATS, Math.floor(now / SHARE_MS), this.#own(), STATS_FRESH_MS + SHARE_MS),
    ];
    for (const m of [minute - 1, minute]) {
      const value = analytics.figuresOf(m);
      if (value !== undefined) shares.push(figures.share(ANALYTICS, m, value, ANALYTICS_KEEP_MS));
    }
    await Promise.all(shares).catch((error: unknown) =>
      log.debug({ err: error }, "sharing figures failed"),
    );
  }

  async #save(): Promise<void> {
    await this.#o.figures
      .save(ANALYTICS, this.#o.analytics)
      .catch((error: unknown) => this.#o.log.warn({ err: error }, "saving analytics failed"));
  }
}
