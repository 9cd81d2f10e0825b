/**
 * The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core,
 * against a real server with a workload. Screenshots go to the git-ignored test-artifacts/.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server.js";
import { launchChromium } from "../fixtures/browser.js";
import { dropCluster, REDIS_URL } from "../fixtures/cluster-node.js";
import { until } from "../fixtures/fake-pool.js";
import { createTestModelRepo, type TestModelRepo, vector } from "../fixtures/model-repo.js";
import { startTestServer } from "../fixtures/test-server.js";

const ARTIFACTS = join(import.meta.dirname, "../../test-artifacts/dashboard");
const ADMIN = "dashboard-admin-key";
const USER = "dashboard-user-key";

let repo: TestModelRepo;
let server: RunningServer;
let context: BrowserContext;
let profile: string;
let base: string;

beforeAll(async () => {
  repo = createTestModelRepo({ dense: true, broken: true });
  server = await startTestServer(repo.dir, {
    API_KEYS: USER,
    ADMIN_API_KEYS: ADMIN,
    // Small model batches: a 1,000-item batch takes long enough for its bar to be seen moving.
    MAX_BATCH_SIZE: "2",
  });
  base = `http://127.0.0.1:${server.apiPort}`;
  mkdirSync(ARTIFACTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), "bp-chromium-"));
  context = await launchChromium(profile, {
    viewport: { width: 1280, height: 900 },
    colorScheme: "light",
  });
}, 60_000);

afterAll(async () => {
  await context?.close();
  await server?.close();
  repo?.cleanup();
  if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
});

async function api(path: string, body?: unknown, key = ADMIN): Promise<Record<string, unknown>> {
  const res = await fetch(`${base}/api/batch-processor${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "X-API-Key": key, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(answer)}`);
  return answer;
}

/**
 * Run in the page: every visible element's own text whose contrast with the background it is
 * drawn on (the nearest ancestor's that is not transparent) is below WCAG AA's 4.5:1, described.
 */
const LOW_CONTRAST = `(() => {
  const parse = (c) => (c.match(/[d.]+/g) || []).map(Number);
  const lum = (c) => {
    const [r, g, b] = parse(c).slice(0, 3).map((v) => {
      const x = v / 255;
      return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => {
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      const a = parse(c)[3];
      if (c && (a === undefined || a > 0.5)) return c;
    }
    return getComputedStyle(document.documentElement).backgroundColor;
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    if (!(el instanceof HTMLElement) || el.closest("[hidden]") || el.offsetParent === null) continue;
    if (el.matches(":disabled, :disabled *, canvas, svg *")) continue;
    const text = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim() !== "");
    if (text.length === 0) continue;
    const s = getComputedStyle(el);
    const r = ratio(s.color, background(el));
    if (r < 4.5) low.push(\`\${el.tagName.toLowerCase()}\${el.id ? \`#\${el.id}\` : ""}.\${el.className}: \${s.color} on \${background(el)} = \${r.toFixed(2)} "\${el.textContent.trim().slice(0, 20)}"\`);
  }
  return low;
})()`;

/** WCAG contrast ratio of two `rgb(r, g, b)` colors. */
function contrast(a: string, b: string): number {
  const luminance = (color: string) => {
    const [r, g, bl] = (color.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    }) as [number, number, number];
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

/** Polls an expression in the page (from here: the page's policy forbids evaluating strings). */
async function pageUntil(page: Page, expression: string, timeoutMs = 15_000): Promise<void> {
  await until(async () => Boolean(await page.evaluate(expression)), timeoutMs);
}

/** Deadline of the workload's items: long, so that a slow machine queues them rather than refuses. */
const TIMEOUT_MS = 120_000;

function denseItems(count: number, seed: number) {
  return Array.from({ length: count }, (_, i) => ({ input: vector(seed + i, 256) }));
}

async function openWithKey(key: string): Promise<Page> {
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("pageerror", (error) => problems.push(error.message));
  page.on("console", (message) => {
    // The browser logs every answer >= 400; the 401s before the key and the 403s refused on
    // purpose are the test's, and the page shows them.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource"))
      problems.push(message.text());
  });
  page.on("response", (response) => {
    if (response.status() === 404 || response.status() >= 500)
      problems.push(`${response.status()} ${response.url()}`);
  });
  await page.goto(`${base}/dashboard`);
  // Light to start with, whatever an earlier page of this profile chose.
  await page.evaluate('localStorage.setItem("batch-processor.theme", "light")');
  await page.reload();
  await page.fill("#api-key", key);
  await page.click("#key-form button[type=submit]");
  // The key is kept for the tab, not in the page's URL or in local storage.
  expect(await page.evaluate('sessionStorage.getItem("batch-processor.api-key")')).toBe(key);
  expect(await page.evaluate('localStorage.getItem("batch-processor.api-key")')).toBeNull();
  (page as Page & { problems?: string[] }).problems = problems;
  return page;
}

describe("dashboard", () => {
  it("serves the page and its assets without a key and with a strict content policy", async () => {
    const page = await fetch(`${base}/dashboard`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("default-src 'self'");
    const html = await page.text();
    // Nothing from another origin.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    for (const asset of ["app.js", "style.css", "uplot.js", "uplot.css"]) {
      const res = await fetch(`${base}/dashboard/${asset}`);
      expect(res.status, asset).toBe(200);
      const again = await fetch(`${base}/dashboard/${asset}`, {
        headers: { "if-none-match": res.headers.get("etag") ?? "" },
      });
      expect(again.status, asset).toBe(304);
    }
    expect((await fetch(`${base}/`, { redirect: "manual" })).headers.get("location")).toBe(
      "/dashboard",
    );
  });

  it("shows live charts, a bar that moves to 100 %, cancel, and the server's message for a bad value", async () => {
    const page = await openWithKey(ADMIN);
    // The models and the configuration come from the server.
    await page.waitForSelector('#models tr[data-model="dense"]');
    // An unavailable model says why.
    expect(await page.textContent('#models tr[data-model="broken"]')).toContain(
      "unavailableONNX Runtime could not load model.onnx",
    );
    expect(await page.inputValue("#max_batch_size")).toBe("2");

    // A batch to follow, work behind it at low priority, and a low batch to cancel while
    // the work keeps it waiting or running.
    const followed = "dash-followed";
    const cancelled = "dash-cancelled";
    // The page follows a running batch through its watch stream, not only the list's refresh,
    // and keeps few streams open: the browser has six connections to the server in all.
    const watching = page.waitForRequest((r) => r.url().endsWith(`/watch/${followed}`));
    let streams = 0;
    let mostStreams = 0;
    page.on("request", (r) => {
      if (r.url().includes("/watch/")) mostStreams = Math.max(mostStreams, ++streams);
    });
    const ended = (r: { url(): string }) => {
      if (r.url().includes("/watch/")) streams--;
    };
    page.on("requestfinished", ended);
    page.on("requestfailed", ended);
    await api("/submit", {
      batch_id: followed,
      data: denseItems(1000, 1),
      timeout_ms: TIMEOUT_MS,
      metadata: { model_id: "dense" },
    });
    for (const k of [1, 2, 3])
      await api("/submit", {
        priority: "low",
        timeout_ms: TIMEOUT_MS,
        data: denseItems(1000, k * 1000),
        metadata: { model_id: "dense" },
      });
    await api("/submit", {
      batch_id: cancelled,
      priority: "low",
      timeout_ms: TIMEOUT_MS,
      data: denseItems(1000, 9000),
      metadata: { model_id: "dense" },
    });
    // Changing the filter reads the list at once, without waiting for the next refresh.
    await page.selectOption("#status-filter", "active");
    await page.selectOption("#status-filter", "all");
    const bar = `tr[data-batch="${followed}"] [role=progressbar]`;
    await page.waitForSelector(bar, { timeout: 15_000 });
    // Every value the bar shows, from the moment its row appears.
    // Runs in the page (a string: this program has no DOM types).
    await page.evaluate(`(() => {
      const seen = [];
      window.seen = seen;
      const record = () => {
        const now = document.querySelector(${JSON.stringify(bar)})?.getAttribute("aria-valuenow");
        if (now !== null && now !== undefined && seen.at(-1) !== Number(now)) seen.push(Number(now));
      };
      record();
      new MutationObserver(record).observe(document.body, {
        subtree: true,
        childList: true,
        attributes: true,
      });
    })()`);

    await watching;
    // While the work runs, the live rate (the tile, and the chart of the last minute that moves
    // every second) shows it: not the average of a minute that began before it.
    await pageUntil(page, 'Number(document.getElementById("chart-live")?.dataset.max) > 0');
    expect(await page.locator("#chart-live canvas").count()).toBe(1);
    await pageUntil(
      page,
      'Number(document.getElementById("kpi-throughput")?.textContent.replace(/[^0-9.]/g, "")) > 0',
    );
    await page.click(`tr[data-batch="${cancelled}"] td.actions button`);
    await page.waitForSelector(`tr[data-batch="${cancelled}"][data-status="cancelled"]`, {
      timeout: 15_000,
    });
    const cancelledStatus = await api(`/status/${cancelled}`);
    expect(cancelledStatus.status).toBe("cancelled");
    // A cancelled batch's bar shows the share that ran, not its finished share (which counts the
    // cancelled items as done).
    const ranBar = page.locator(`tr[data-batch="${cancelled}"] [role=progressbar]`);
    const ran =
      ((cancelledStatus.completed_requests as number) -
        (cancelledStatus.failed_requests as number)) /
      (cancelledStatus.total_requests as number);
    expect(Number(await ranBar.getAttribute("aria-valuenow"))).toBe(Math.round(ran * 100));
    expect(await ranBar.textContent()).toMatch(/ % ran$/);

    await page.waitForSelector(`tr[data-batch="${followed}"][data-status="completed"]`, {
      timeout: 60_000,
    });
    const seen = (await page.evaluate("window.seen")) as number[];
    expect(mostStreams).toBeGreaterThan(0);
    expect(mostStreams).toBeLessThanOrEqual(3);
    expect(seen.at(-1)).toBe(100);
    expect(seen.some((value) => value > 0 && value < 100)).toBe(true);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));

    // The charts draw the work just done.
    await pageUntil(
      page,
      'Number(document.getElementById("chart-throughput")?.dataset.max) > 0',
      20_000,
    );
    for (const id of ["chart-throughput", "chart-latency", "chart-queue", "chart-batch-size"]) {
      const points = await page.getAttribute(`#${id}`, "data-points");
      expect(Number(points), id).toBeGreaterThan(0);
      expect(await page.locator(`#${id} canvas`).count(), id).toBe(1);
    }
    expect(Number(await page.getAttribute("#chart-latency", "data-max"))).toBeGreaterThan(0);

    // Each class's latency against its target: critical and high have one by default.
    expect(await page.textContent('#targets tr[data-priority="critical"]')).toContain("100 ms");
    expect(await page.getAttribute('#targets tr[data-priority="low"]', "data-within")).toBe(
      "no target",
    );
    // A target the low work could not meet shows as missed; a negative one is refused.
    await page.fill('input[name="target.low"]', "0.001");
    await page.click("#save-config");
    await page.waitForSelector("#config-message.ok");
    const targets = async () =>
      (await api("/config")).priority_latency_ms as Record<string, number>;
    expect((await targets()).low).toBe(0.001);
    await pageUntil(
      page,
      `document.querySelector('#targets tr[data-priority="low"]').dataset.within === "no"`,
    );
    expect(await page.locator('#targets tr[data-priority="low"] td.over').count()).toBe(1);
    await page.fill('input[name="target.low"]', "-1");
    await page.click("#save-config");
    const targetError = page.locator('.field-error[data-for="priority_latency_ms"]');
    await targetError.waitFor({ state: "visible" });
    expect(await targetError.textContent()).toMatch(
      /^priority_latency_ms\.low: must be a number in 0\.\.3600000, got -1/,
    );
    await page.fill('input[name="target.low"]', "0");
    await page.click("#save-config");
    await page.waitForSelector("#config-message.ok");
    expect((await targets()).low).toBe(0);

    // The detail of the completed batch lists its results.
    await page.click(`tr[data-batch="${followed}"] td.id button`);
    await pageUntil(page, 'document.querySelectorAll("#results tbody tr").length > 0');
    expect(await page.locator("#results tbody tr").count()).toBe(100);

    // A value the server refuses: its message, beside the field.
    await page.fill("#max_batch_size", "0");
    await page.click("#save-config");
    const error = page.locator('.field-error[data-for="max_batch_size"]');
    await error.waitFor({ state: "visible" });
    expect(await error.textContent()).toMatch(
      /^max_batch_size: must be an integer in 1\.\.\d+, got 0/,
    );
    expect(await page.getAttribute("#max_batch_size", "aria-invalid")).toBe("true");
    expect((await api("/config")).max_batch_size).toBe(2);
    // A good one applies.
    await page.fill("#max_batch_size", "8");
    await page.click("#save-config");
    await page.waitForSelector("#config-message.ok");
    expect((await api("/config")).max_batch_size).toBe(8);

    await page.screenshot({ path: join(ARTIFACTS, "1280-light.png"), fullPage: true });
    await page.click("#theme");
    expect(await page.evaluate("document.documentElement.dataset.theme")).toBe("dark");
    const background = await page.evaluate("getComputedStyle(document.body).backgroundColor");
    expect(background).toBe("rgb(15, 18, 23)");
    // The charts are drawn again at once in the new colors, not blank until the next refresh.
    for (const id of ["chart-throughput", "chart-live"])
      expect(await page.locator(`#${id} canvas`).count(), id).toBe(1);
    // The error banner and the buttons read at WCAG AA contrast (4.5:1) in both themes.
    for (const theme of ["dark", "light"]) {
      await page.evaluate(
        `(() => { document.documentElement.dataset.theme = ${JSON.stringify(theme)}; const n = document.getElementById("notice"); n.hidden = false; n.textContent = "x"; })()`,
      );
      for (const selector of ["#notice", "#save-config", '#key-form button[type="submit"]']) {
        const [fg, bg] = (await page.evaluate(
          `(() => { const s = getComputedStyle(document.querySelector(${JSON.stringify(selector)})); return [s.color, s.backgroundColor]; })()`,
        )) as [string, string];
        expect(contrast(fg, bg), `${theme} ${selector}: ${fg} on ${bg}`).toBeGreaterThanOrEqual(
          4.5,
        );
      }
    }
    await page.evaluate(
      '(() => { document.documentElement.dataset.theme = "dark"; document.getElementById("notice").hidden = true; })()',
    );
    // Every visible text on the page, against the background it is drawn on, in both themes.
    for (const theme of ["dark", "light"]) {
      await page.evaluate(`document.documentElement.dataset.theme = ${JSON.stringify(theme)}`);
      expect(await page.evaluate(LOW_CONTRAST), theme).toEqual([]);
    }
    await page.evaluate('document.documentElement.dataset.theme = "dark"');
    await page.screenshot({ path: join(ARTIFACTS, "1280-dark.png"), fullPage: true });

    // Pages of 15: 17 batches make a second page of 2, older than the first.
    for (let k = 0; k < 12; k++)
      await api("/submit", { data: [{ input: [k, 1, 2] }], timeout_ms: TIMEOUT_MS });
    await page.selectOption("#status-filter", "completed");
    await page.selectOption("#status-filter", "all");
    await pageUntil(
      page,
      "document.querySelectorAll(\"#batches[data-filter=all][data-page='1'] tbody tr\").length === 15",
    );
    const first = await page
      .locator("#batches tbody tr")
      .evaluateAll((rows) => rows.map((row) => row.getAttribute("data-batch")));
    await page.click("#next-page");
    await pageUntil(
      page,
      "document.querySelectorAll(\"#batches[data-filter=all][data-page='2'] tbody tr\").length === 2",
    );
    expect(await page.textContent("#page-info")).toBe("page 2");
    const second = await page
      .locator("#batches tbody tr")
      .evaluateAll((rows) => rows.map((row) => row.getAttribute("data-batch")));
    expect(second.filter((id) => first.includes(id))).toEqual([]);
    // Newest first: the batch submitted first ends the last page.
    expect(second.at(-1)).toBe(followed);
    expect(await page.isDisabled("#next-page")).toBe(true);
    expect((page as Page & { problems?: string[] }).problems).toEqual([]);
    await page.close();
  }, 120_000);

  it("lists jobs with their progress, cancels one and downloads another's results", async () => {
    const upload = async (jobId: string, lines: number, model: string) => {
      const body = Array.from({ length: lines }, (_, i) =>
        JSON.stringify({ input: vector(i, model === "dense" ? 256 : 4), id: `r${i + 1}` }),
      ).join("\n");
      const res = await fetch(
        `${base}/api/batch-processor/jobs?job_id=${jobId}&model_id=${model}`,
        { method: "POST", headers: { "X-API-Key": ADMIN }, body },
      );
      expect(res.status).toBe(201);
    };
    // One model batch of one item at a time: the big job is still running when the page shows it.
    await api("/configure", { max_batch_size: 1, enable_dynamic_batching: false });
    try {
      await upload("dash-big", 20_000, "dense");
      await upload("dash-small", 300, "default");
      const page = await openWithKey(ADMIN);
      await page.waitForSelector('tr[data-job="dash-big"] td.actions button:has-text("Cancel")', {
        timeout: 15_000,
      });
      await page.click('tr[data-job="dash-big"] td.actions button:has-text("Cancel")');
      await page.waitForSelector('tr[data-job="dash-big"][data-status="cancelled"]', {
        timeout: 15_000,
      });
      expect((await api("/jobs/dash-big")).status).toBe("cancelled");
      await page.waitForSelector('tr[data-job="dash-small"][data-status="completed"]', {
        timeout: 30_000,
      });
      expect(await page.textContent('tr[data-job="dash-small"]')).toContain("300 / 300");
      const download = page.waitForEvent("download");
      await page.click('tr[data-job="dash-small"] td.actions button:has-text("Results")');
      const file = await (await download).path();
      const lines = (await import("node:fs")).readFileSync(file, "utf8").trim().split("\n");
      expect(lines).toHaveLength(300);
      expect(JSON.parse(lines[0] as string)).toMatchObject({ line: 1, id: "r1" });
      expect((page as Page & { problems?: string[] }).problems).toEqual([]);
      await page.close();
    } finally {
      await api("/configure", { max_batch_size: 8, enable_dynamic_batching: true });
    }
  });

  it("shows every node of a cluster with its threads and the node that ran each batch, neither on a node alone", async () => {
    const alone = await openWithKey(ADMIN);
    await pageUntil(alone, 'document.querySelectorAll("#kpis dd").length > 0');
    expect(await alone.isHidden("#nodes-section")).toBe(true);
    expect(await alone.locator("#batches.cluster").count()).toBe(0);
    await alone.close();
    const prefix = `dash-${process.pid}-${Date.now()}`;
    const env = {
      API_KEYS: USER,
      ADMIN_API_KEYS: ADMIN,
      REDIS_URL,
      CLUSTER_PREFIX: prefix,
      OWNER_SECRET: "test-owner-secret-of-at-least-32-characters",
      INFERENCE_THREADS: "2",
    };
    const a = await startTestServer(repo.dir, env);
    const b = await startTestServer(repo.dir, env);
    try {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${a.apiPort}/dashboard`);
      await page.fill("#api-key", ADMIN);
      await page.click("#key-form button[type=submit]");
      // The other node appears once it has shared its figures (every 5 s).
      await pageUntil(page, 'document.querySelectorAll("#nodes tbody tr").length === 2', 20_000);
      expect(await page.isVisible("#nodes-section")).toBe(true);
      const rows = await page
        .locator("#nodes tbody tr")
        .evaluateAll((trs) =>
          trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)),
        );
      expect(new Set(rows.map((r) => r[0])).size).toBe(2);
      for (const row of rows) expect(row[1]).toBe("2");
      // Each batch says which node ran it, one of the two.
      const submitted = await fetch(`http://127.0.0.1:${a.apiPort}/api/batch-processor/submit`, {
        method: "POST",
        headers: { "X-API-Key": ADMIN, "content-type": "application/json" },
        body: JSON.stringify({ batch_id: "dash-cluster", data: [{ input: [1, 2, 3] }] }),
      });
      expect(submitted.status).toBe(200);
      const cell =
        '#batches.cluster tr[data-batch="dash-cluster"][data-status="completed"] td.node-col';
      await pageUntil(page, `document.querySelector(${JSON.stringify(cell)}) !== null`, 20_000);
      expect(rows.map((r) => r[0])).toContain(await page.textContent(cell));
      await page.close();
    } finally {
      await Promise.all([a.close(), b.close()]);
      await dropCluster(prefix);
    }
  }, 60_000);

  it("fits a 390 px phone, and tells a non-admin key it may not change the configuration", async () => {
    const page = await openWithKey(USER);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForSelector('#models tr[data-model="default"]');
    await pageUntil(page, 'document.querySelectorAll("#kpis dd").length > 0');
    // Nothing wider than the screen: the page does not scroll sideways.
    expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    await page.fill("#max_wait_time_ms", "5");
    await page.click("#save-config");
    const message = page.locator("#config-message.error");
    await message.waitFor({ state: "visible" });
    expect(await message.textContent()).toContain("may not change the configuration");
    expect(await page.isDisabled("#max_wait_time_ms")).toBe(true);
    await page.click("#reload-models");
    await page.waitForSelector("#models-message.error");
    expect(await page.textContent("#models-message")).toContain("may not reload the models");
    await page.screenshot({ path: join(ARTIFACTS, "390-light.png"), fullPage: true });
    await page.click("#theme");
    await page.screenshot({ path: join(ARTIFACTS, "390-dark.png"), fullPage: true });
    expect((page as Page & { problems?: string[] }).problems).toEqual([]);
    await page.close();
  }, 60_000);

  it("asks for a key when the server answers that one is needed", async () => {
    const page = await context.newPage();
    await page.goto(`${base}/dashboard`);
    await page.evaluate('sessionStorage.removeItem("batch-processor.api-key")');
    await page.reload();
    await page.waitForSelector("#notice:not([hidden])");
    expect(await page.textContent("#notice")).toBe("The server needs an API key: enter one above.");
    await page.close();
  });
});
