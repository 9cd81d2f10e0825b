/**
 * The dashboard's static files: `dashboard/` of the package (the page, its script and styles)
 * and uPlot's from its package, read once at start and served under `/dashboard/` with no key
 * (they hold no data; the page's calls to the API carry the key its user enters).
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { EngineLogger } from "../engine/index.js";

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

/** What the page may load and call: itself only. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/** Serves the dashboard's files. */
export class Dashboard {
  readonly #assets: ReadonlyMap<string, Asset>;

  constructor(assets: ReadonlyMap<string, Asset>) {
    this.#assets = assets;
  }

  /**
   * Reads the files. Without them (a copy of the server that left `dashboard/` out) the API
   * serves as ever and `/dashboard` answers 404; the log says why.
   */
  static load(log: EngineLogger): Dashboard {
    try {
      return new Dashboard(readAssets());
    } catch (error) {
      log.warn({ err: error }, "the dashboard's files are missing: /dashboard is not served");
      return new Dashboard(new Map());
    }
  }

  /** Answers a GET or HEAD for a dashboard path; false when `path` is not one. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (path === "/" && this.#assets.size > 0) {
      res.writeHead(302, { location: "/dashboard" });
      res.end();
      return true;
    }
    const asset = this.#assets.get(path === "/dashboard/" ? "/dashboard" : path);
    if (asset === undefined) return false;
    const common = {
      etag: asset.etag,
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "content-security-policy": CONTENT_SECURITY_POLICY,
    };
    if (req.headers["if-none-match"] === asset.etag) {
      res.writeHead(304, common);
      res.end();
      return true;
    }
    res.writeHead(200, {
      ...common,
      "content-type": asset.type,
      "content-length": asset.body.length,
    });
    res.end(req.method === "HEAD" ? undefined : asset.body);
    return true;
  }
}

function readAssets(): Map<string, Asset> {
  const folder = dashboardFolder();
  const require = createRequire(import.meta.url);
  const uplot = dirname(require.resolve("uplot/dist/uPlot.iife.min.js"));
  const files: readonly [string, string, string][] = [
    ["/dashboard", join(folder, "index.html"), "text/html; charset=utf-8"],
    ["/dashboard/app.js", join(folder, "app.js"), "text/javascript; charset=utf-8"],
    ["/dashboard/style.css", join(folder, "style.css"), "text/css; charset=utf-8"],
    ["/dashboard/uplot.js", join(uplot, "uPlot.iife.min.js"), "text/javascript; charset=utf-8"],
    ["/dashboard/uplot.css", join(uplot, "uPlot.min.css"), "text/css; charset=utf-8"],
  ];
  const assets = new Map<string, Asset>();
  for (const [path, file, type] of files) {
    const body = readFileSync(file);
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
    assets.set(path, { body, type, etag });
  }
  return assets;
}

/** `dashboard/` beside `src/` (under tsx) or beside `dist/` (compiled). */
function dashboardFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 4; up++) {
    const candidate = join(dir, "dashboard");
    if (existsSync(join(candidate, "index.html"))) return candidate;
    dir = dirname(dir);
  }
  throw new Error("the dashboard's files (dashboard/index.html) are not in the package");
}
