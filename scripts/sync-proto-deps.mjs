// Copies the two googleapis files the contract imports (google/api/http.proto and
// annotations.proto) from the google-proto-files package into the git-ignored proto-deps/, so buf
// can resolve them without committing third-party files. Run by `npm run generate`.
import { copyFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const source = join(dirname(require.resolve("google-proto-files/package.json")), "google", "api");
const target = fileURLToPath(new URL("../proto-deps/google/api/", import.meta.url));
mkdirSync(target, { recursive: true });
for (const file of ["http.proto", "annotations.proto"])
  copyFileSync(join(source, file), join(target, file));
