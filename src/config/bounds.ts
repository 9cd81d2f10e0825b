/**
 * Bounds of the settings that are not the engine's own options (those are declared with them:
 * `OPTION_BOUNDS` in `engine/options.ts`). The configuration reader checks every value against
 * these, and a component handed such an option (the inference pool) checks it against the same
 * ones. Plain constants, so any layer may read them.
 */

/** Inclusive bounds, by setting. */
export const SETTING_BOUNDS = Object.freeze({
  port: [0, 65535],
  threads: [1, 256],
  onlineThreads: [0, 64],
  intraOpNumThreads: [1, 256],
  nice: [0, 19],
  cudaDeviceId: [0, 63],
  modelPollSeconds: [0, 86_400],
  clusterNodeBatches: [1, 10_000],
  clusterLockMs: [1000, 600_000],
  maxRequestBytes: [1024, 1024 * 1024 * 1024],
  requestTimeoutMs: [1000, 3_600_000],
  maxRequestsInFlight: [0, 1_000_000],
  maxEventLoopDelayMs: [0, 60_000],
  shutdownTimeoutMs: [0, 3_600_000],
  webSockets: [0, 1_000_000],
  webSocketIdleMs: [1000, 3_600_000],
  webSocketMessagesPerSecond: [1, 100_000],
} as const satisfies Record<string, readonly [number, number]>);
