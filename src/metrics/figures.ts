/**
 * The figures port: where a node keeps its figures (counters, analytics minutes) and finds the
 * other nodes' figures. A node alone keeps them in its job store's settings across restarts and
 * has no peers ({@link storeFigures}); the nodes of a cluster share theirs per time bucket in
 * Redis instead (`src/cluster/redis-figures.ts`), and keep nothing of their own: what a node
 * recorded before a restart stays in the cluster's figures as another node's, never counted twice.
 */

import { hostname } from "node:os";

/** Figures another node shared. */
export interface PeerFigures {
  readonly node: string;
  readonly bucket: number;
  readonly value: unknown;
}

/** See the file comment. */
export interface Figures {
  /** This node's name among the nodes sharing figures (its host name when it is alone). */
  readonly node: string;
  /** What this node kept under `key` with {@link save}, if anything. */
  load(key: string): Promise<unknown>;
  /** Keeps `value` under `key` for {@link load} after a restart (replacing what was kept). */
  save(key: string, value: unknown): Promise<void>;
  /**
   * Shares this node's figures for one time bucket under `key`, replacing what it shared for
   * that bucket before; kept for `ttlMs`.
   */
  share(key: string, bucket: number, value: unknown, ttlMs: number): Promise<void>;
  /**
   * What every other node shared under `key` for `buckets`, nodes that have left included (their
   * figures are history), in no particular order.
   */
  peers(key: string, buckets: readonly number[]): Promise<PeerFigures[]>;
}

/** The settings part of a job store. */
export interface SettingsStore {
  getSetting(key: string): Promise<string | undefined>;
  putSetting(key: string, value: string): Promise<void>;
}

/** The figures of a node alone: kept as JSON in its store's settings, shared with no one. */
export function storeFigures(settings: SettingsStore, node = hostname()): Figures {
  const settingOf = (key: string) => `state:${key}`;
  return {
    node,
    async load(key) {
      const text = await settings.getSetting(settingOf(key));
      if (text === undefined) return undefined;
      try {
        return JSON.parse(text) as unknown;
      } catch {
        return undefined;
      }
    },
    save: (key, value) => settings.putSetting(settingOf(key), JSON.stringify(value)),
    share: async () => {},
    peers: async () => [],
  };
}
