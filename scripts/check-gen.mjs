// Fails when gen/ is not exactly what `buf generate` produces from proto/ (CI runs it in npm test).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
execFileSync(process.execPath, [join(root, "scripts", "sync-proto-deps.mjs")], {
  stdio: "inherit",
});
const out = mkdtempSync(join(tmpdir(), "bp-gen-"));
try {
  execFileSync(join(root, "node_modules", ".bin", "buf"), ["generate", "-o", out], {
    cwd: root,
    stdio: "inherit",
  });
  const list = (dir) =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? list(path) : [path];
    });
  const expected = new Map(
    list(join(out, "gen")).map((p) => [relative(join(out, "gen"), p), readFileSync(p, "utf8")]),
  );
  const actual = new Map(
    list(join(root, "gen")).map((p) => [relative(join(root, "gen"), p), readFileSync(p, "utf8")]),
  );
  const problems = [];
  for (const [file, text] of expected) {
    if (!actual.has(file)) problems.push(`missing gen/${file}`);
    else if (actual.get(file) !== text) problems.push(`stale gen/${file}`);
  }
  for (const file of actual.keys()) if (!expected.has(file)) problems.push(`extra gen/${file}`);
  if (problems.length > 0) {
    console.error(
      `gen/ does not match buf generate (run npm run generate):\n  ${problems.join("\n  ")}`,
    );
    process.exit(1);
  }
  console.log(`gen/ matches buf generate (${expected.size} files)`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
