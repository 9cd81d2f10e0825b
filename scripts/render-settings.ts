/**
 * Writes the configuration table into docs/configuration.md from the settings' one declaration
 * (`src/config/settings.ts`), between its `settings:begin` and `settings:end` markers.
 * Usage: npm run docs:settings
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderSettingsTable } from "../src/config/index.js";

const path = fileURLToPath(new URL("../docs/configuration.md", import.meta.url));
const doc = readFileSync(path, "utf8");
const begin = "<!-- settings:begin -->";
const end = "<!-- settings:end -->";
const from = doc.indexOf(begin);
const to = doc.indexOf(end);
if (from < 0 || to < from) throw new Error(`${path} has no ${begin} ... ${end} section`);
writeFileSync(
  path,
  `${doc.slice(0, from + begin.length)}\n${renderSettingsTable()}\n${doc.slice(to)}`,
);
