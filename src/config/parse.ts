/**
 * How a setting is declared and how its text is read: one parser per kind of value, each
 * throwing a {@link RuleError} that the reader turns into an error naming the variable.
 */
/** Command-line flags that override the environment. */
export interface ConfigFlags {
  readonly host?: string | undefined;
  readonly port?: string | undefined;
  readonly grpcPort?: string | undefined;
  readonly models?: string | undefined;
  readonly dataDir?: string | undefined;
}

/** The environment, or any map of variables to text. */
export type Env = Readonly<Record<string, string | undefined>>;

/** A value that breaks its setting's rule; the reader names the variable. */
export class RuleError extends Error {}

/** One setting: where it is read from, its default and meaning, and how its text is read. */
export interface Setting<T> {
  readonly env: string;
  /** A second variable read when `env` is unset (the v1 API's name). */
  readonly alias?: string;
  readonly flag?: { readonly name: keyof ConfigFlags; readonly text: string };
  /** The default as the environment would write it, or, for one decided at start, how. */
  readonly default: string | { readonly text: string; readonly value: (env: Env) => string };
  readonly meaning: string;
  readonly parse: (text: string) => T;
}

/** Declares a setting (its type follows its parser). */
export const setting = <T>(s: Setting<T>): Setting<T> => s;

export const integer =
  ([min, max]: readonly [number, number]) =>
  (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new RuleError(`must be an integer in ${min}..${max}`);
    return n;
  };

export const decimal =
  ([min, max]: readonly [number, number]) =>
  (text: string): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new RuleError(`must be a number in ${min}..${max}`);
    return n;
  };

export const boolean = (text: string): boolean => {
  const t = text.toLowerCase();
  if (["true", "1", "yes", "on"].includes(t)) return true;
  if (["false", "0", "no", "off"].includes(t)) return false;
  throw new RuleError("must be true or false");
};

export const text = (value: string): string => value;

export const list = (value: string): readonly string[] =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

/**
 * A comma list of web origins (`scheme://host[:port]`, as browsers send them in `Origin`), or
 * `*`; each checked, so a path or a trailing slash is refused rather than never matching.
 */
export const origins = (value: string): readonly string[] => {
  const out = list(value);
  for (const origin of out) {
    if (origin === "*") continue;
    let parsed: URL;
    try {
      parsed = new URL(origin);
    } catch {
      throw new RuleError("must list origins like https://app.example.com");
    }
    if (parsed.origin !== origin)
      throw new RuleError(
        `must list origins (scheme://host[:port], no path): ${JSON.stringify(origin)} is not one; did you mean ${JSON.stringify(parsed.origin)}?`,
      );
  }
  return out;
};

/** A comma list, or `none` for the empty list. */
export const noneOrList = (value: string): readonly string[] =>
  value.trim().toLowerCase() === "none" ? [] : list(value);

export const oneOf =
  <T extends string>(allowed: readonly T[], aliases: Readonly<Record<string, T>> = {}) =>
  (value: string): T => {
    const v = value.toLowerCase();
    const resolved = aliases[v] ?? v;
    if (!(allowed as readonly string[]).includes(resolved))
      throw new RuleError(`must be one of ${allowed.join(", ")}`);
    return resolved as T;
  };

const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `90` (seconds), `90s`, `15m`, `24h`, `7d` or `500ms`, within `bounds` (ms). */
export const duration =
  ([min, max]: readonly [number, number]) =>
  (value: string): number => {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value);
    const ms =
      match === null
        ? Number.NaN
        : Number(match[1]) * DURATION_UNITS[(match[2] ?? "s") as keyof typeof DURATION_UNITS];
    if (!Number.isFinite(ms) || ms < min || ms > max)
      throw new RuleError(
        `must be a duration of ${min / 1000} s to ${max / 86_400_000} days, like 3600, 90m or 24h`,
      );
    return Math.round(ms);
  };

/** A Redis key prefix: letters, digits, `_`, `-` and `.` (a `:` would split the key layout). */
export const clusterPrefix = (value: string): string => {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(value))
    throw new RuleError("must be 1 to 64 letters, digits, `_`, `-` or `.`");
  return value;
};

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

/** The trimmed value of `name`, or undefined when it is unset or blank. */
export function present(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === "" ? undefined : value;
}
