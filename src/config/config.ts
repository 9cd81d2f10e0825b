/**
 * The only reader of `process.env`. Every setting is declared once in {@link SETTINGS}; one
 * reader parses them all, and the configuration table in `docs/configuration.md` is rendered from
 * the same declarations ({@link renderSettingsTable}; a test keeps them equal).
 */
import { type ConfigFlags, type Env, present, RuleError, type Setting } from "./parse.js";
import { SETTINGS } from "./settings.js";

type Settings = typeof SETTINGS;

/** Every setting of a server process. */
export type ServerConfig = {
  readonly [K in keyof Settings]: ReturnType<Settings[K]["parse"]>;
};

export type { ConfigFlags } from "./parse.js";

/** Reads and validates the configuration; throws a `RangeError` naming the variable (or flag). */
export function loadConfig(env: Env = process.env, flags: ConfigFlags = {}): ServerConfig {
  const config: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const flag = s.flag === undefined ? undefined : flags[s.flag.name];
    const given =
      flag ?? present(env, s.env) ?? (s.alias === undefined ? undefined : present(env, s.alias));
    const raw = given ?? (typeof s.default === "string" ? s.default : s.default.value(env));
    const name =
      flag !== undefined
        ? s.flag?.text
        : present(env, s.env) !== undefined || s.alias === undefined
          ? s.env
          : s.alias;
    try {
      config[key] = s.parse(raw);
    } catch (error) {
      if (!(error instanceof RuleError)) throw error;
      throw new RangeError(`${name} ${error.message}, got ${JSON.stringify(raw)}`);
    }
  }
  return Object.freeze(config) as ServerConfig;
}

/** The configuration table of `docs/configuration.md`, rendered from {@link SETTINGS}. */
export function renderSettingsTable(): string {
  const rows = Object.values(SETTINGS).map((s: Setting<unknown>) => {
    const name = s.alias === undefined ? `\`${s.env}\`` : `\`${s.env}\` (alias \`${s.alias}\`)`;
    const flag = s.flag === undefined ? "" : `\`${s.flag.text}\``;
    const def = typeof s.default === "string" ? s.default : s.default.text;
    const shown = def === "" ? "empty" : typeof s.default === "string" ? `\`${def}\`` : def;
    return [name, flag, shown, s.meaning];
  });
  const header = ["variable", "flag", "default", "meaning"];
  // Columns padded to one width, as a Markdown formatter would leave them.
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
