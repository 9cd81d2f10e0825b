/**
 * The configuration: the only reader of the environment, every setting declared once, and the
 * bounds of the settings that are not the engine's own options.
 */
export { SETTING_BOUNDS } from "./bounds.js";
export {
  type ConfigFlags,
  loadConfig,
  renderSettingsTable,
  type ServerConfig,
} from "./config.js";
export {
  type KeptSecret,
  keptSecrets,
  SECRET_FILES,
  settingsDifferingFromCluster,
} from "./kept-secrets.js";
export { SETTINGS } from "./settings.js";
