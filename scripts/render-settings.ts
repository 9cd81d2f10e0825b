/**
 * Writes the configuration table into README.md from the settings' one declaration
 * (`src/config/config.ts`), between its `settings:begin` and `settings:end` markers.
 * Usage: npm run docs:settings
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderSettingsTable } from "../src/config/config.js";

const path = fileURLToPath(new URL("../README.md", import.meta.url));
const readme = readFileSync(path, "utf8");
const begin = "<!-- settings:begin -->";
const end = "<!-- settings:end -->";
const from = readme.indexOf(begin);
const to = readme.indexOf(end);
if (from < 0 || to < from) throw new Error(`README.md has no ${begin} ... ${end} section`);
writeFileSync(
  path,
  `${readme.slice(0, from + begin.length)}\n${renderSettingsTable()}\n${readme.slice(to)}`,
);
