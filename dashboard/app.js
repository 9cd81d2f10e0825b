/**
 * The dashboard: a page over the same REST API the clients use. The API key lives in the tab's
 * sessionStorage only. Every few seconds it reads the live figures, the analytics of the chosen
 * period, the batches, the jobs and the models; running batches follow their watch stream.
 * Everything the server sends is written as text, never as HTML.
 */
/* global uPlot */

const API = "/api/batch-processor";
const KEY_STORE = "batch-processor.api-key";
const THEME_STORE = "batch-processor.theme";
const PRIORITIES = ["critical", "high", "normal", "low"];
const ACTIVE = new Set(["queued", "processing"]);
const REFRESH_MS = 3000;
/** How often the live figures (the tiles and the last minute's rate) are read. */
const LIVE_MS = 1000;
/** The seconds the "Items/s" tile averages over. */
const RATE_SECONDS = 5;
const PAGE_SIZE = 15;
const RESULTS_SHOWN = 100;

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** A failed API call: the HTTP status and the server's error code and message. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) ?? "";
}

function headers(json) {
  const h = new Headers();
  const key = apiKey();
  if (key !== "") h.set("X-API-Key", key);
  if (json) h.set("content-type", "application/json");
  return h;
}

/** Calls the REST API; resolves to the JSON answer or throws an {@link ApiError}. */
async function api(path, { method = "GET", body } = {}) {
  let res;
  try {
    res = await fetch(API + path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "unavailable", "the server cannot be reached");
  }
  const text = await res.text();
  let answer = {};
  try {
    answer = text === "" ? {} : JSON.parse(text);
  } catch {
    answer = { message: text.slice(0, 200) };
  }
  if (!res.ok) throw new ApiError(res.status, answer.error ?? "unknown", answer.message ?? "");
  return answer;
}

/** Builds an element; strings become text nodes. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
    else if (name === "style") node.style.cssText = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

/**
 * Answers can arrive out of order (a filter changed twice, a refresh beside a change): each
 * read takes a ticket, and only the newest ticket's answer is shown.
 */
const tickets = new Map();
function take(what) {
  const ticket = (tickets.get(what) ?? 0) + 1;
  tickets.set(what, ticket);
  return ticket;
}
function current(what, ticket) {
  return tickets.get(what) === ticket;
}

const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const fmt = (value) => (Number.isFinite(value) ? number.format(value) : "–");
const when = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "–");

// ---------------------------------------------------------------------------------------------
// Notices: one line under the header for what stops the page from working (key, connection).

function notice(text) {
  const box = $("notice");
  box.hidden = text === undefined;
  box.textContent = text ?? "";
}

function explain(error) {
  if (!(error instanceof ApiError)) return String(error);
  if (error.status === 401)
    return apiKey() === ""
      ? "The server needs an API key: enter one above."
      : `The server did not accept this key: ${error.message}`;
  return `${error.code}: ${error.message}`;
}

// ---------------------------------------------------------------------------------------------
// Live figures.

async function refreshKpis() {
  const ticket = take("kpis");
  const m = await api("/metrics");
  if (!current("kpis", ticket)) return;
  const c = m.current_stats ?? {};
  const p = m.performance_stats ?? {};
  const r = m.resource_usage ?? {};
  const recent = c.recent_items_per_second ?? [];
  const last = recent.slice(-RATE_SECONDS);
  const rate = last.length === 0 ? 0 : last.reduce((a, b) => a + b, 0) / last.length;
  const tiles = [
    ["Active batches", fmt(c.active_batches), "kpi-active"],
    ["Queue length", fmt(c.queue_length), "kpi-queue"],
    [`Items/s, last ${RATE_SECONDS} s`, fmt(rate), "kpi-throughput"],
    ["Items/s, last minute", fmt(c.throughput_per_second), "kpi-throughput-minute"],
    ["Mean latency, ms", fmt(c.average_latency_ms), "kpi-latency"],
    ["Mean batch size", fmt(c.average_batch_size), "kpi-batch-size"],
    ["Processed", fmt(p.total_processed), "kpi-processed"],
    ["Success rate", `${fmt((p.success_rate ?? 0) * 100)} %`, "kpi-success"],
    ["CPU", `${fmt(r.cpu_usage_percent)} %`, "kpi-cpu"],
    ["Memory, MB", fmt(r.memory_usage_mb), "kpi-memory"],
  ];
  $("kpis").replaceChildren(
    ...tiles.map(([label, value, id]) =>
      el("div", {}, el("dt", {}, label), el("dd", { id }, value)),
    ),
  );
  lastRecent = recent;
  renderLive(recent);
  renderNodes(m.nodes ?? []);
}

/**
 * The nodes of a cluster, each with its threads, the share of them busy and its items/s (the
 * other nodes' as they last shared them); shown when there is more than one.
 */
function renderNodes(nodes) {
  $("nodes-section").hidden = nodes.length < 2;
  // The node that ran each batch is worth a column only where there are several.
  $("batches").classList.toggle("cluster", nodes.length > 1);
  /** @type {HTMLTableElement} */ ($("nodes")).tBodies[0].replaceChildren(
    ...nodes.map((n) =>
      el(
        "tr",
        { "data-node": n.node },
        el("td", { class: "id", title: n.node }, n.node),
        el("td", {}, fmt(n.threads)),
        el(
          "td",
          {},
          `${fmt(n.busy_threads)} (${fmt(n.threads > 0 ? (100 * n.busy_threads) / n.threads : 0)} %)`,
        ),
        el("td", {}, fmt(n.items_per_second)),
        el("td", { class: "wide" }, when(n.updated_at)),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Charts (uPlot), from GetAnalytics: one point a minute over the period.

/** @type {Map<string, {plot: any, key: string}>} */
const charts = new Map();

/** The theme's colors for the canvas, resolved (a custom property holds `light-dark(…)`). */
function palette() {
  const probe = el("span", { hidden: true });
  document.body.append(probe);
  const resolve = (name) => {
    probe.style.color = `var(${name})`;
    return getComputedStyle(probe).color;
  };
  const colors = {
    text: resolve("--muted"),
    grid: resolve("--line"),
    series: [1, 2, 3, 4, 5].map((i) => resolve(`--series-${i}`)),
  };
  probe.remove();
  return colors;
}

/** The lines each chart draws, from the answer's series. */
function linesFor(metric, series, scope) {
  const pick = (name, priority) => series.find((s) => s.metric === name && s.priority === priority);
  if (metric === "latency")
    return ["p50", "p95", "p99"].map((q) => ({
      label: `${q} ${scope}`,
      series: pick(`latency_${q}`, scope),
    }));
  return ["all", ...PRIORITIES].map((priority) => ({
    label: priority,
    series: pick(metric, priority),
  }));
}

/** The period the charts span, in seconds: every chart's x axis covers all of it. */
let span = { start: 0, end: 1 };

function renderCharts(analytics) {
  const series = analytics.series ?? [];
  const scope = /** @type {HTMLSelectElement} */ ($("scope")).value;
  const colors = palette();
  span = { start: Date.parse(analytics.start) / 1000, end: Date.parse(analytics.end) / 1000 };
  for (const figure of document.querySelectorAll(".chart")) {
    const metric = figure.dataset.metric;
    const lines = linesFor(metric, series, scope).filter((l) => l.series !== undefined);
    // Series hold the minutes that had data: align them on the minutes any of them has.
    const seconds = (p) => Date.parse(p.time) / 1000;
    const times = [...new Set(lines.flatMap((l) => l.series.points.map(seconds)))].sort(
      (a, b) => a - b,
    );
    const data = [
      times,
      ...lines.map((l) => {
        const byTime = new Map(l.series.points.map((p) => [seconds(p), p.value ?? 0]));
        return times.map((t) => byTime.get(t) ?? null);
      }),
    ];
    const values = data
      .slice(1)
      .flat()
      .filter((v) => v !== null);
    figure.dataset.points = String(times.length);
    figure.dataset.max = String(Math.max(0, ...values));
    const key = `${lines.map((l) => l.label).join()}|${colors.series.join()}|${times.length <= 120}`;
    const existing = charts.get(figure.id);
    if (existing !== undefined && existing.key === key) {
      existing.plot.setData(data);
      continue;
    }
    existing?.plot.destroy();
    charts.delete(figure.id);
    figure.querySelector(".empty")?.remove();
    if (times.length === 0) {
      figure.append(el("p", { class: "empty" }, "No data for this period yet"));
      continue;
    }
    const axis = {
      stroke: colors.text,
      grid: { stroke: colors.grid, width: 1 },
      ticks: { show: false },
    };
    const plot = new uPlot(
      {
        width: Math.max(200, figure.clientWidth),
        height: 190,
        scales: {
          x: { time: true, range: () => [span.start, span.end] },
          y: { range: (_u, _min, hi) => [0, hi > 0 ? hi * 1.1 : 1] },
        },
        axes: [axis, { ...axis, size: 50 }],
        series: [
          {},
          ...lines.map((line, i) => ({
            label: line.label,
            stroke: colors.series[i % colors.series.length],
            width: i === 0 && metric !== "latency" ? 2 : 1.25,
            points: { show: times.length <= 120, size: 5 },
            value: (_u, v) => (v === null || v === undefined ? "–" : fmt(v)),
          })),
        ],
        legend: { show: true, live: false },
      },
      data,
      figure,
    );
    charts.set(figure.id, { plot, key });
  }
}

/** The last answer of each chart's source, drawn again at once when the theme changes. */
let lastAnalytics;
let lastRecent = [];
/** @type {{plot: any, key: string} | undefined} */
let live;

/** The last minute's items/s, a point a second, the newest on the right. */
function renderLive(recent) {
  const figure = $("chart-live");
  const now = Math.floor(Date.now() / 1000);
  const times = recent.map((_, k) => now - recent.length + k);
  figure.dataset.points = String(recent.length);
  figure.dataset.max = String(Math.max(0, ...recent));
  const colors = palette();
  const key = colors.series.join();
  if (live !== undefined && live.key === key) {
    live.plot.setData([times, recent]);
    return;
  }
  live?.plot.destroy();
  const axis = {
    stroke: colors.text,
    grid: { stroke: colors.grid, width: 1 },
    ticks: { show: false },
  };
  live = {
    key,
    plot: new uPlot(
      {
        width: Math.max(200, figure.clientWidth),
        height: 120,
        scales: { y: { range: (_u, _min, hi) => [0, hi > 0 ? hi * 1.1 : 1] } },
        axes: [axis, { ...axis, size: 50 }],
        series: [
          {},
          {
            label: "items/s",
            stroke: colors.series[0],
            fill: colors.series[0].replace("rgb(", "rgba(").replace(")", ", 0.15)"),
            width: 1.5,
            points: { show: false },
            value: (_u, v) => (v === null || v === undefined ? "–" : fmt(v)),
          },
        ],
        legend: { show: false },
      },
      [times, recent],
      figure,
    ),
  };
}

const resize = new ResizeObserver((entries) => {
  for (const entry of entries) {
    if (entry.target.id === "chart-live") {
      live?.plot.setSize({ width: Math.max(200, entry.target.clientWidth), height: 120 });
      continue;
    }
    const chart = charts.get(entry.target.id);
    if (chart !== undefined)
      chart.plot.setSize({ width: Math.max(200, entry.target.clientWidth), height: 190 });
  }
});
for (const figure of document.querySelectorAll(".chart, .live")) resize.observe(figure);

function resetCharts() {
  for (const chart of charts.values()) chart.plot.destroy();
  charts.clear();
}

async function refreshCharts() {
  const period = /** @type {HTMLSelectElement} */ ($("period")).value;
  const ticket = take("charts");
  const analytics = await api(
    `/analytics?period=${period}&metrics=throughput&metrics=latency&metrics=queue_length&metrics=batch_size`,
  );
  if (!current("charts", ticket)) return;
  lastAnalytics = analytics;
  renderCharts(analytics);
  renderTargets();
}

/** The configuration last read from the server (its latency targets). */
let lastConfig;

/**
 * Each class's latency over the charts' period beside its target: online classes (those with a
 * target) are judged on their p99.
 */
function renderTargets() {
  const body = /** @type {HTMLTableElement} */ ($("targets")).tBodies[0];
  const series = lastAnalytics?.series ?? [];
  const summary = (metric, priority) => {
    const s = series.find((x) => x.metric === metric && x.priority === priority);
    return s === undefined || (s.points ?? []).length === 0 ? undefined : s.summary;
  };
  const ms = (v) => (v === undefined ? "–" : `${number.format(v)} ms`);
  body.replaceChildren(
    ...PRIORITIES.map((p) => {
      const p99 = summary("latency_p99", p);
      const target = lastConfig?.priority_latency_ms?.[p] ?? 0;
      const verdict =
        target <= 0 ? "no target" : p99 === undefined ? "no traffic" : p99 <= target ? "yes" : "no";
      return el(
        "tr",
        { "data-priority": p, "data-within": verdict },
        el("th", { scope: "row" }, p),
        el("td", {}, ms(summary("latency_p50", p))),
        el("td", {}, ms(p99)),
        el("td", {}, target > 0 ? ms(target) : "–"),
        el("td", { class: verdict === "no" ? "over" : "" }, verdict),
      );
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Batches: a page of the list, live rows for the active ones, cancel, detail.

/** The freshest view of each batch on the page (the list's or its watch stream's). */
const views = new Map();
/** Open watch streams, by batch id. */
const watches = new Map();
/**
 * Most watch streams open at once. A browser holds at most six HTTP/1.1 connections to one
 * server and a stream keeps one for the batch's life, so the page follows a few batches live
 * (the one in the detail first, then the oldest processing, then the oldest queued: those that
 * move first) and leaves the rest to the refresh, and room for its other calls.
 */
const MAX_STREAMS = 3;
const pageTokens = [""];
let page = 0;
let nextToken = "";
let detailId;

/** Items with an outcome: `completed_requests` counts those that failed too. */
function done(view) {
  return view.completed_requests ?? 0;
}

/** Keeps the more advanced of two views of one batch. */
function fresher(a, b) {
  if (a === undefined) return b;
  if (!ACTIVE.has(a.status) && ACTIVE.has(b.status)) return a;
  if (ACTIVE.has(a.status) && !ACTIVE.has(b.status)) return b;
  return done(b) >= done(a) ? b : a;
}

/**
 * A batch's bar: how far it got. A batch that ended without running every item (cancelled,
 * failed) shows the share of its items that ran to an output, not its finished share (which
 * counts the cancelled items too).
 */
function progressBar(view) {
  const ended = !ACTIVE.has(view.status) && view.status !== "completed";
  const total = view.total_requests ?? 0;
  const ran = Math.max(0, (view.completed_requests ?? 0) - (view.failed_requests ?? 0));
  const share = ended ? (total === 0 ? 0 : ran / total) : (view.progress ?? 0);
  const pct = Math.round(share * 100);
  return el(
    "div",
    {
      class: ended ? "progress ended" : "progress",
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": pct,
      "aria-label": ended ? `share of ${view.batch_id} that ran` : `progress of ${view.batch_id}`,
    },
    el("div", { class: "track" }, el("div", { class: "fill", style: `width: ${pct}%` })),
    el("span", { class: "pct" }, ended ? `${pct} % ran` : `${pct} %`),
  );
}

function batchRow(view) {
  const id = view.batch_id;
  const cancel = ACTIVE.has(view.status)
    ? el("button", { type: "button", class: "quiet", onclick: () => cancelBatch(id) }, "Cancel")
    : undefined;
  return el(
    "tr",
    { "data-batch": id, "data-status": view.status },
    el(
      "td",
      { class: "id", title: id },
      el("button", { type: "button", class: "link", onclick: () => openDetail(id) }, id),
    ),
    el("td", {}, el("span", { class: `status ${view.status}` }, view.status)),
    el("td", { class: "wide" }, view.priority ?? ""),
    el("td", { class: "wide" }, view.model_id ?? ""),
    el("td", { class: "wide node-col", title: view.node ?? "" }, view.node ?? "–"),
    el("td", {}, progressBar(view)),
    el("td", { class: "wide" }, when(view.created_at)),
    el("td", { class: "actions" }, cancel),
  );
}

/** Draws the page of batches; the table names the filter and page it shows. */
function renderBatches(status) {
  const table = /** @type {HTMLTableElement} */ ($("batches"));
  table.dataset.filter = status;
  table.dataset.page = String(page + 1);
  const body = table.tBodies[0];
  const rows = [...views.values()].map(batchRow);
  body.replaceChildren(
    ...(rows.length > 0
      ? rows
      : [el("tr", {}, el("td", { colspan: 8, class: "reason" }, "No batches"))]),
  );
  $("page-info").textContent = `page ${page + 1}`;
  /** @type {HTMLButtonElement} */ ($("next-page")).disabled = nextToken === "";
  /** @type {HTMLButtonElement} */ ($("first-page")).disabled = page === 0;
}

async function refreshBatches() {
  const status = /** @type {HTMLSelectElement} */ ($("status-filter")).value;
  const token = pageTokens[page] ?? "";
  const ticket = take("batches");
  const list = await api(
    `/batches?status=${status}&limit=${PAGE_SIZE}${token === "" ? "" : `&page_token=${encodeURIComponent(token)}`}`,
  );
  if (!current("batches", ticket)) return;
  nextToken = list.next_page_token ?? "";
  const shown = new Map();
  for (const view of list.batches ?? [])
    shown.set(view.batch_id, fresher(views.get(view.batch_id), view));
  views.clear();
  for (const [id, view] of shown) views.set(id, view);
  followSome();
  renderBatches(status);
}

/** Keeps streams open for the batches that most need them, at most {@link MAX_STREAMS}. */
function followSome() {
  // The list is newest first.
  const active = [...views.values()].filter((v) => ACTIVE.has(v.status)).reverse();
  const wanted = [
    ...(detailId !== undefined && watches.has(detailId) ? [detailId] : []),
    ...active.filter((v) => v.status === "processing").map((v) => v.batch_id),
    ...active.filter((v) => v.status === "queued").map((v) => v.batch_id),
  ];
  const chosen = new Set(wanted.slice(0, MAX_STREAMS));
  for (const [id, controller] of watches) if (!chosen.has(id)) controller.abort();
  for (const id of chosen) follow(id);
}

/** Follows a batch's NDJSON watch stream until it ends (fetch: EventSource cannot send the key). */
async function follow(id) {
  if (watches.has(id)) return;
  const controller = new AbortController();
  watches.set(id, controller);
  try {
    const res = await fetch(`${API}/watch/${encodeURIComponent(id)}`, {
      headers: headers(false),
      signal: controller.signal,
    });
    if (!res.ok || res.body === null) return;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      buffered += value;
      let newline = buffered.indexOf("\n");
      while (newline >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line !== "") {
          const event = JSON.parse(line);
          if (typeof event.error !== "object") onView(event);
        }
        newline = buffered.indexOf("\n");
      }
    }
  } catch {
    // Aborted, or the connection broke: the next refresh opens it again while it is active.
  } finally {
    if (watches.get(id) === controller) watches.delete(id);
  }
}

function onView(view) {
  const id = view.batch_id;
  if (views.has(id)) {
    const next = fresher(views.get(id), view);
    const row = document.querySelector(`tr[data-batch="${CSS.escape(id)}"]`);
    const filter = /** @type {HTMLSelectElement} */ ($("status-filter")).value;
    // A row leaves a filtered list once its batch no longer has the state the list shows.
    if (!shownBy(filter, next.status)) {
      views.delete(id);
      row?.remove();
      if (views.size === 0) renderBatches(filter);
    } else {
      views.set(id, next);
      row?.replaceWith(batchRow(next));
    }
  }
  if (id === detailId) {
    renderDetailStatus(view);
    if (!ACTIVE.has(view.status)) void loadResults(id);
  }
}

/** Whether the list filtered by `filter` shows a batch in `status`. */
function shownBy(filter, status) {
  return filter === "all" || (filter === "active" ? ACTIVE.has(status) : filter === status);
}

async function cancelBatch(id) {
  try {
    onView(await api(`/cancel/${encodeURIComponent(id)}`, { method: "DELETE" }));
  } catch (error) {
    // It ended before the cancel came: show how it ended instead of an error.
    if (error instanceof ApiError && error.status === 409) {
      try {
        onView(await api(`/status/${encodeURIComponent(id)}`));
        return;
      } catch {
        // Not readable now either: say why the cancel was refused.
      }
    }
    notice(`Cancel ${id}: ${explain(error)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Jobs: the newest page, read at every refresh (a job moves slowly enough; no stream is kept
// open for one), with cancel and a download of the results.

const JOB_ACTIVE = new Set(["validating", "queued", "running"]);

function jobLines(view) {
  const c = view.counts ?? {};
  const parts = [`${fmt(c.completed ?? 0)} / ${fmt(c.total ?? 0)}`];
  if ((c.failed ?? 0) > 0) parts.push(`${fmt(c.failed)} failed`);
  if ((c.invalid ?? 0) > 0) parts.push(`${fmt(c.invalid)} invalid`);
  return parts.join(", ");
}

function jobEta(view) {
  if (!JOB_ACTIVE.has(view.status)) return when(view.completed_at);
  if (!view.estimated_completion_time) return "–";
  const seconds = Math.max(0, (Date.parse(view.estimated_completion_time) - Date.now()) / 1000);
  return seconds < 90 ? `${Math.ceil(seconds)} s` : `${Math.ceil(seconds / 60)} min`;
}

function jobRow(view) {
  const id = view.job_id;
  const actions = [];
  if (JOB_ACTIVE.has(view.status) && view.status !== "validating")
    actions.push(
      el("button", { type: "button", class: "quiet", onclick: () => cancelJob(id) }, "Cancel"),
    );
  if (view.status !== "validating")
    actions.push(
      el("button", { type: "button", class: "quiet", onclick: () => downloadJob(id) }, "Results"),
    );
  return el(
    "tr",
    { "data-job": id, "data-status": view.status },
    el("td", { class: "id", title: id }, id),
    el(
      "td",
      { title: view.error ?? "" },
      el("span", { class: `status ${view.status}` }, view.status),
    ),
    el("td", {}, progressBar({ ...view, batch_id: id })),
    el("td", { class: "wide" }, jobLines(view)),
    el("td", { class: "wide" }, fmt(view.items_per_second ?? 0)),
    el("td", { class: "wide" }, jobEta(view)),
    el("td", { class: "actions" }, ...actions),
  );
}

async function refreshJobs() {
  const status = /** @type {HTMLSelectElement} */ ($("job-filter")).value;
  const ticket = take("jobs");
  const message = $("jobs-message");
  let list;
  try {
    list = await api(`/jobs?status=${status}&limit=${PAGE_SIZE}`);
  } catch (error) {
    // A deployment without jobs says so in the panel, not as a page-wide problem.
    if (error instanceof ApiError && error.code === "unimplemented") {
      message.hidden = false;
      message.textContent = error.message;
      $("jobs").tBodies[0].replaceChildren();
      return;
    }
    throw error;
  }
  if (!current("jobs", ticket)) return;
  message.hidden = true;
  const rows = (list.jobs ?? []).map(jobRow);
  $("jobs").tBodies[0].replaceChildren(
    ...(rows.length > 0
      ? rows
      : [el("tr", {}, el("td", { colspan: 7, class: "reason" }, "No jobs"))]),
  );
}

async function cancelJob(id) {
  try {
    const view = await api(`/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST", body: {} });
    document.querySelector(`tr[data-job="${CSS.escape(id)}"]`)?.replaceWith(jobRow(view));
  } catch (error) {
    notice(`Cancel ${id}: ${explain(error)}`);
  }
}

/** Saves a job's results (NDJSON, in input order) as a file; a link cannot send the key. */
async function downloadJob(id) {
  try {
    const res = await fetch(`${API}/jobs/${encodeURIComponent(id)}/results`, {
      headers: headers(false),
    });
    if (!res.ok) throw new ApiError(res.status, "unknown", await res.text());
    const url = URL.createObjectURL(await res.blob());
    const link = el("a", { href: url, download: `${id}.results.jsonl` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    notice(`Results of ${id}: ${explain(error)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// A batch's detail: its status and results (what has finished so far while it runs).

function renderDetailStatus(view) {
  const facts = [
    ["Batch", view.batch_id],
    ["Status", view.status],
    [
      "Items",
      `${fmt(done(view))} of ${fmt(view.total_requests)} (${fmt(view.failed_requests)} failed)`,
    ],
    ["Priority", view.priority],
    ["Model", view.model_id],
    ["Node", view.node ?? "–"],
    ["Queue position", fmt(view.queue_position)],
    ["Created", view.created_at ? new Date(view.created_at).toLocaleString() : "–"],
    [
      "Estimated completion",
      view.estimated_completion_time
        ? new Date(view.estimated_completion_time).toLocaleTimeString()
        : "–",
    ],
    ["Processing time, ms", fmt(view.processing_time_ms)],
    ["Error", view.error ?? "–"],
  ];
  $("detail-status").replaceChildren(
    ...facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, String(v ?? "–")))),
  );
  $("detail-status").append(
    el("div", {}, el("dt", {}, "Progress"), el("dd", {}, progressBar(view))),
  );
}

async function loadResults(id) {
  const message = $("detail-message");
  try {
    const answer = await api(`/results/${encodeURIComponent(id)}?partial=true`);
    if (id !== detailId) return;
    const results = answer.results ?? [];
    const rows = results.slice(0, RESULTS_SHOWN).map((r) =>
      el(
        "tr",
        {},
        el("td", { class: "id" }, r.request_id),
        el("td", {}, r.label ?? ""),
        el("td", {}, r.error ? "" : (r.confidence ?? 0).toFixed(3)),
        el(
          "td",
          { class: "wide" },
          (r.output ?? [])
            .slice(0, 6)
            .map((x) => x.toFixed(4))
            .join(", ") + ((r.output ?? []).length > 6 ? ", …" : ""),
        ),
        el("td", { class: "reason bad" }, r.error ?? ""),
      ),
    );
    /** @type {HTMLTableElement} */ ($("results")).tBodies[0].replaceChildren(...rows);
    message.hidden = results.length <= RESULTS_SHOWN;
    message.className = "message";
    message.textContent = `The first ${RESULTS_SHOWN} of ${results.length} results.`;
  } catch (error) {
    message.hidden = false;
    message.className = "message error";
    message.textContent = explain(error);
  }
}

async function openDetail(id) {
  detailId = id;
  const section = $("detail");
  section.hidden = false;
  $("detail-title").textContent = `Batch ${id}`;
  /** @type {HTMLTableElement} */ ($("results")).tBodies[0].replaceChildren();
  try {
    const view = await api(`/status/${encodeURIComponent(id)}`);
    renderDetailStatus(view);
    await loadResults(id);
    if (ACTIVE.has(view.status)) {
      // The detail's batch comes first among the streams.
      let open = watches.size;
      for (const [other, controller] of watches) {
        if (open < MAX_STREAMS) break;
        if (other !== id) {
          controller.abort();
          open--;
        }
      }
      follow(id);
    }
  } catch (error) {
    $("detail-message").hidden = false;
    $("detail-message").className = "message error";
    $("detail-message").textContent = explain(error);
  }
  section.scrollIntoView({ behavior: "smooth", block: "start" });
}

// ---------------------------------------------------------------------------------------------
// Models: availability, provider, why not, and the reload (admin keys).

async function refreshModels() {
  const { models = [] } = await api("/models");
  const rows = models.map((m) =>
    el(
      "tr",
      { "data-model": m.name },
      el(
        "td",
        {},
        m.name,
        m.description ? el("div", { class: "reason" }, m.description) : undefined,
      ),
      el(
        "td",
        {},
        el(
          "span",
          { class: `status ${m.available ? "completed" : "failed"}` },
          m.available ? "available" : "unavailable",
        ),
        m.reason ? el("div", { class: "reason bad" }, m.reason) : undefined,
        m.reload_error
          ? el("div", { class: "reason bad" }, `new files did not load: ${m.reload_error}`)
          : undefined,
      ),
      el("td", {}, m.execution_provider || "–"),
      el("td", { class: "wide" }, `[${(m.input_shape ?? []).join(", ")}] × ≤${m.max_batch_size}`),
      el("td", { class: "wide" }, m.loaded_at ? new Date(m.loaded_at).toLocaleString() : "–"),
    ),
  );
  /** @type {HTMLTableElement} */ ($("models")).tBodies[0].replaceChildren(...rows);
}

async function reloadModels() {
  const message = $("models-message");
  const button = /** @type {HTMLButtonElement} */ ($("reload-models"));
  button.disabled = true;
  message.hidden = false;
  message.className = "message";
  message.textContent = "Reloading…";
  try {
    const { changes = [] } = await api("/models/reload", { method: "POST", body: {} });
    const failed = changes.filter((c) => c.outcome === "failed");
    message.className = failed.length > 0 ? "message error" : "message ok";
    message.textContent = changes
      .map((c) => (c.reason ? `${c.name}: ${c.outcome} (${c.reason})` : `${c.name}: ${c.outcome}`))
      .join("; ");
    await refreshModels();
  } catch (error) {
    message.className = "message error";
    message.textContent = error instanceof ApiError ? error.message : String(error);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Batching configuration: the form shows the server's values; the server validates a change and
// its message appears beside the field it names.

const form = /** @type {HTMLFormElement} */ ($("config"));

function fillConfig(config) {
  lastConfig = config;
  renderTargets();
  form.elements.namedItem("max_batch_size").value = config.max_batch_size;
  form.elements.namedItem("max_wait_time_ms").value = config.max_wait_time_ms;
  form.elements.namedItem("enable_dynamic_batching").checked = config.enable_dynamic_batching;
  for (const p of PRIORITIES)
    form.elements.namedItem(`weight.${p}`).value = config.priority_weights?.[p] ?? "";
  for (const p of PRIORITIES)
    form.elements.namedItem(`target.${p}`).value = config.priority_latency_ms?.[p] ?? "";
}

function clearFieldErrors() {
  for (const error of form.querySelectorAll(".field-error")) {
    error.hidden = true;
    error.textContent = "";
  }
  for (const input of form.querySelectorAll("[aria-invalid]"))
    input.removeAttribute("aria-invalid");
}

/** Shows a server message beside the field its text starts with; false when it names none. */
function showFieldError(message) {
  const field = /^([a-z_]+)(?:\.[a-z_]+)?:/.exec(message)?.[1];
  const slot = field === undefined ? null : form.querySelector(`.field-error[data-for="${field}"]`);
  if (slot === null) return false;
  slot.hidden = false;
  slot.textContent = message;
  const input =
    field === "priority_weights"
      ? form.querySelector('input[name^="weight."]')
      : field === "priority_latency_ms"
        ? form.querySelector('input[name^="target."]')
        : form.elements.namedItem(field);
  input?.setAttribute("aria-invalid", "true");
  return true;
}

function numeric(name) {
  const text = form.elements.namedItem(name).value.trim();
  return text === "" ? undefined : Number(text);
}

async function applyConfig(event) {
  event.preventDefault();
  clearFieldErrors();
  const message = $("config-message");
  const byClass = (prefix) => {
    const values = {};
    for (const p of PRIORITIES) {
      const value = numeric(`${prefix}.${p}`);
      if (value !== undefined) values[p] = value;
    }
    return values;
  };
  const change = {
    max_batch_size: numeric("max_batch_size"),
    max_wait_time_ms: numeric("max_wait_time_ms"),
    enable_dynamic_batching: form.elements.namedItem("enable_dynamic_batching").checked,
    priority_weights: byClass("weight"),
    priority_latency_ms: byClass("target"),
  };
  try {
    fillConfig(await api("/configure", { method: "POST", body: change }));
    message.hidden = false;
    message.className = "message ok";
    message.textContent = "Applied.";
  } catch (error) {
    const text = error instanceof ApiError ? error.message : String(error);
    message.hidden = false;
    message.className = "message error";
    if (error instanceof ApiError && error.status === 403) {
      message.textContent = text;
      for (const input of form.querySelectorAll("input, button")) input.disabled = true;
    } else if (showFieldError(text)) {
      message.textContent = "Not applied: see the field above.";
    } else {
      message.textContent = text;
    }
  }
}

async function loadConfig() {
  fillConfig(await api("/config"));
}

// ---------------------------------------------------------------------------------------------
// Key, theme, refresh loop.

function applyTheme() {
  const theme = localStorage.getItem(THEME_STORE);
  if (theme === "dark" || theme === "light") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  // Drawn again at once in the theme's colors, from what they last showed.
  if (lastAnalytics === undefined) resetCharts();
  else renderCharts(lastAnalytics);
  if (live !== undefined) renderLive(lastRecent);
}

function toggleTheme() {
  const dark =
    document.documentElement.dataset.theme === "dark" ||
    (document.documentElement.dataset.theme === undefined &&
      matchMedia("(prefers-color-scheme: dark)").matches);
  localStorage.setItem(THEME_STORE, dark ? "light" : "dark");
  applyTheme();
  void refresh();
}

function showKeyState() {
  const input = /** @type {HTMLInputElement} */ ($("api-key"));
  input.value = "";
  input.placeholder = apiKey() === "" ? "X-API-Key" : "key set for this tab";
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const outcomes = await Promise.allSettled([
      refreshKpis(),
      refreshCharts(),
      refreshBatches(),
      refreshJobs(),
      refreshModels(),
    ]);
    const failed = outcomes.find((o) => o.status === "rejected");
    notice(failed === undefined ? undefined : explain(failed.reason));
  } finally {
    refreshing = false;
  }
}

function restart() {
  for (const controller of watches.values()) controller.abort();
  watches.clear();
  views.clear();
  pageTokens.length = 1;
  page = 0;
  void loadConfig().catch(() => undefined);
  void refresh();
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = /** @type {HTMLInputElement} */ ($("api-key")).value.trim();
  if (value !== "") sessionStorage.setItem(KEY_STORE, value);
  showKeyState();
  restart();
});
$("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORE);
  showKeyState();
  restart();
});
$("theme").addEventListener("click", toggleTheme);
$("period").addEventListener("change", () => void refreshCharts().catch((e) => notice(explain(e))));
$("scope").addEventListener("change", () => void refreshCharts().catch((e) => notice(explain(e))));
$("status-filter").addEventListener("change", () => {
  pageTokens.length = 1;
  page = 0;
  void refreshBatches().catch((e) => notice(explain(e)));
});
$("job-filter").addEventListener("change", () => {
  void refreshJobs().catch((e) => notice(explain(e)));
});
$("next-page").addEventListener("click", () => {
  if (nextToken === "") return;
  pageTokens[page + 1] = nextToken;
  page++;
  void refreshBatches().catch((e) => notice(explain(e)));
});
$("first-page").addEventListener("click", () => {
  page = 0;
  void refreshBatches().catch((e) => notice(explain(e)));
});
$("close-detail").addEventListener("click", () => {
  if (detailId !== undefined && !views.has(detailId)) watches.get(detailId)?.abort();
  detailId = undefined;
  $("detail").hidden = true;
});
$("reload-models").addEventListener("click", () => void reloadModels());
form.addEventListener("submit", (event) => void applyConfig(event));
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", applyTheme);

applyTheme();
showKeyState();
restart();
// A hidden tab asks nothing of the server; it catches up when shown again.
setInterval(() => {
  if (!document.hidden) void refresh();
}, REFRESH_MS);
// The live figures move every second while the tab is shown.
setInterval(() => {
  if (!document.hidden && !refreshing) void refreshKpis().catch(() => undefined);
}, LIVE_MS);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) void refresh();
});
