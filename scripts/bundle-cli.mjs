#!/usr/bin/env node
// Bundles the CLI into one file, dist/src/batch-processor.mjs (the package's `bin`): a client
// command then loads one file instead of resolving hundreds of modules. `serve` imports the
// compiled server beside it (dist/src/serve.js) only when it runs. Run after `tsc` (npm run build).
// Usage: bundle-cli.mjs [outfile]
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
await build({
  entryPoints: [`${root}src/cli.ts`],
  outfile: process.argv[2] ?? `${root}dist/src/batch-processor.mjs`,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // CommonJS dependencies call require() for Node's modules; an ES module has none of its own.
  banner: {
    js: 'import { createRequire as __createRequire } from "node:module";\nconst require = __createRequire(import.meta.url);',
  },
  logLevel: "warning",
});
