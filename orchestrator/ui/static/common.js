// What every page script shares: DOM helpers (text only, never HTML), JSON fetches with ETags,
// the CSRF header, the flash message, time formatting and the live runs table.

export const SVG_NS = "http://www.w3.org/2000/svg";

export const GLYPHS = {
  pending: "○", queued: "◔", running: "▶", retrying: "↻",
  succeeded: "✓", failed: "✗", skipped: "⤼", cancelled: "⊘",
};

/** An element with attributes and text content (data is never parsed as HTML). */
export function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(key, String(value));
  }
  if (text !== null && text !== undefined) node.textContent = String(text);
  return node;
}

export function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  if (text !== null && text !== undefined) node.textContent = String(text);
  return node;
}

/** Set text only when it changed (no layout work for a poll that changed nothing). */
export function setText(node, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (node && node.textContent !== value) node.textContent = value;
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

function toLogin() {
  const here = location.pathname + location.search;
  location.assign(`/ui/login?next=${encodeURIComponent(here)}`);
}

/** GET JSON; with an ETag, a 304 answers {changed: false}. A lost session goes to the login. */
export async function getJSON(url, etag = null) {
  const headers = { Accept: "application/json" };
  if (etag) headers["If-None-Match"] = etag;
  const response = await fetch(url, { headers, credentials: "same-origin", cache: "no-cache" });
  if (response.status === 304) return { changed: false, etag };
  if (response.status === 401) { toLogin(); throw new Error("not logged in"); }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(data?.error?.message || `${response.status} ${response.statusText}`);
  return { changed: true, etag: response.headers.get("ETag"), data };
}

/** POST with the CSRF token; resolves {ok, message} with the API's error message on failure. */
export async function post(url) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": cookie("orch_csrf"), Accept: "application/json" },
  });
  const data = await response.json().catch(() => null);
  if (response.ok) return { ok: true, message: "" };
  return { ok: false, message: data?.error?.message || `${response.status} ${response.statusText}` };
}

export function flash(message, kind = "error") {
  const box = document.querySelector("[data-testid=flash]");
  if (!box) return;
  box.className = `flash ${kind}`;
  box.textContent = message;
  box.hidden = !message;
}

export function seconds(iso) {
  return iso ? Date.parse(iso) / 1000 : null;
}

export function duration(secs) {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return "";
  if (secs < 1) return `${Math.round(secs * 1000)} ms`;
  if (secs < 60) return `${secs.toFixed(secs < 10 ? 1 : 0)} s`;
  const m = Math.floor(secs / 60), s = Math.round(secs % 60);
  if (m < 60) return `${m} m ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} m`;
}

export function span(startIso, endIso, now = Date.now() / 1000) {
  const start = seconds(startIso);
  if (start === null) return "";
  return duration((seconds(endIso) ?? now) - start);
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** Shows every server-rendered <time datetime> in the reader's own time zone and format. */
export function localizeTimes(root = document) {
  for (const node of root.querySelectorAll("time[datetime]")) setText(node, when(node.dateTime));
}

/** Calls fn now and then every `ms` until stop(); a failing call shows in the flash and polling goes on. */
export function poll(fn, ms) {
  let timer = null, stopped = false;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (err) { if (!stopped) flash(String(err.message || err)); }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return {
    stop() { stopped = true; clearTimeout(timer); },
    now() { if (!stopped) { clearTimeout(timer); tick(); } },
  };
}

const RUN_FIELDS = ["run", "workflow", "status", "trigger", "started_by", "duration", "created"];

/** A runs table (`<tbody>` rows keyed by run id) updated in place: new runs at the top, no reload. */
export class RunsTable {
  constructor(table) {
    this.body = table.tBodies[0];
    this.rows = new Map();
    this.runs = new Map();
    for (const row of this.body.rows) this.rows.set(row.dataset.runId, row);
  }

  build(run) {
    const row = el("tr", { "data-run-id": run.run_id });
    for (const field of RUN_FIELDS) row.append(el("td", { "data-field": field }));
    const link = el("a", { href: `/ui/runs/${encodeURIComponent(run.run_id)}` }, run.run_id);
    row.cells[0].append(link);
    row.cells[2].append(el("span", { class: "badge" }));
    row.cells[6].append(el("time"));
    return row;
  }

  fill(row, run) {
    const cell = (name) => row.querySelector(`[data-field=${name}]`);
    setText(cell("workflow"), run.workflow);
    const badge = cell("status").querySelector(".badge") || cell("status");
    setText(badge, run.status);
    badge.className = `badge st-${run.status}`;
    setText(cell("trigger"), run.trigger);
    setText(cell("started_by"), run.started_by || "");
    const time = cell("created").querySelector("time") || cell("created");
    if (time.getAttribute("datetime") !== run.created_at) time.setAttribute("datetime", run.created_at);
    setText(time, when(run.created_at));
    time.title = run.created_at;
    this.tickRow(row, run);
  }

  tickRow(row, run) {
    setText(row.querySelector("[data-field=duration]"), span(run.started_at, run.finished_at));
  }

  /** Rows for exactly these runs in this order, reusing the elements of runs already shown. */
  update(runs) {
    const keep = new Set();
    runs.forEach((run, index) => {
      let row = this.rows.get(run.run_id);
      if (!row) { row = this.build(run); this.rows.set(run.run_id, row); }
      this.fill(row, run);
      this.runs.set(run.run_id, run);
      keep.add(run.run_id);
      const at = this.body.rows[index];
      if (at !== row) this.body.insertBefore(row, at || null);
    });
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) { row.remove(); this.rows.delete(id); this.runs.delete(id); }
    }
  }

  /** Durations of running runs move on between polls. */
  tick() {
    for (const [id, run] of this.runs) if (!run.finished_at) this.tickRow(this.rows.get(id), run);
  }
}
