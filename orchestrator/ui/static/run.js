// The run page: the DAG coloured by step state, the timeline of attempts, the step detail, the
// history, cancel and retry. Polls the run's state every second (a 304 while nothing changed) and
// stops once the run has finished.
import { drawDag, edgeToggle } from "./dag.js";
import { duration, el, flash, getJSON, localizeTimes, poll, post, setText, span, when } from "./common.js";

const main = document.getElementById("app");
localizeTimes(main);
const runId = main.dataset.runId;
const base = `/ui/api/runs/${encodeURIComponent(runId)}`;
const q = (sel, root = document) => root.querySelector(sel);
const field = (root, name) => q(`[data-field="${name}"]`, root);

const MAX_ROWS = 2000;
const MAX_EVENTS = 2000;

let graph = null, dag = null, flowerUrl = null;
let current = null;          // the last state payload
let selected = null;         // the step shown in the detail
let lastEvent = null;        // the id of the last event appended
let shownEvents = 0;
let timelineTag = null, stateTag = null, detailKey = "";
let poller = null;

// --- header ------------------------------------------------------------------------------------

function header(state) {
  const badge = q("[data-testid=run-status]");
  setText(badge, state.status);
  badge.className = `badge st-${state.status}`;
  const head = q(".run-head");
  setText(field(head, "started"), when(state.started_at));
  setText(field(head, "finished"), when(state.finished_at));
  setText(field(head, "duration"), span(state.started_at, state.finished_at, state.now));
  q("[data-testid=cancel]").hidden = state.finished;
  q("[data-testid=retry]").hidden = !state.finished || state.status === "succeeded";
}

// --- step detail -------------------------------------------------------------------------------

async function showStep(name) {
  selected = name;
  dag?.select(name);
  const section = q("[data-testid=step-detail]");
  section.hidden = false;
  const { data } = await getJSON(`${base}/steps/${encodeURIComponent(name)}`);
  if (selected !== name) return;
  setText(field(section, "name"), name);
  setText(field(section, "status"), data.status);
  setText(field(section, "task"), data.task);
  setText(field(section, "attempts"), data.attempts);
  setText(field(section, "worker"), data.worker || "—");
  const idCell = field(section, "task-id");
  idCell.replaceChildren();
  if (data.task_id && flowerUrl) {
    idCell.append(el("a", { href: `${flowerUrl}/task/${encodeURIComponent(data.task_id)}`, target: "_blank", rel: "noopener noreferrer" }, data.task_id));
  } else {
    idCell.textContent = data.task_id || "—";
  }
  setText(field(section, "started"), when(data.started_at));
  setText(field(section, "finished"), when(data.finished_at));
  setText(field(section, "took"), span(data.started_at, data.finished_at));
  setText(field(section, "items"), data.items === null ? "—" : `${data.items_done ?? 0}/${data.items} items`);
  const key = data.idempotency_key;
  setText(field(section, "idempotency-key"), key ? (key.rendered ?? `${key.template} (not rendered yet)`) : "—");
  setText(field(section, "error-type"), data.error?.type || "—");
  setText(field(section, "error-message"), data.error?.message || "—");
  setText(field(section, "output"), data.output_text || (data.status === "succeeded" ? "null" : "—"));
  const note = field(section, "output-note");
  note.hidden = !data.output_truncated;
  setText(note, data.output_truncated ? `Showing the first 64 KiB of ${data.output_bytes} bytes.` : "");
}

q("[data-testid=step-detail] [data-field=close]").addEventListener("click", () => {
  q("[data-testid=step-detail]").hidden = true;
  selected = null;
  dag?.select(null);
});

// --- timeline ----------------------------------------------------------------------------------

function renderTimeline(data) {
  const box = q("[data-testid=timeline]");
  const bars = data.bars;
  const critical = new Set(data.critical);
  if (!bars.length) { box.replaceChildren(el("p", { class: "hint" }, "No attempt has started yet.")); return; }
  let t0 = Infinity, t1 = -Infinity;
  for (const [, , , queued, started, ended] of bars) {
    t0 = Math.min(t0, queued ?? started);
    t1 = Math.max(t1, ended ?? data.now);
  }
  const total = Math.max(t1 - t0, 0.001);
  const pct = (t) => `${(((t - t0) / total) * 100).toFixed(3)}%`;
  const rows = new Map();
  for (const bar of bars) {
    if (!rows.has(bar[0])) rows.set(bar[0], []);
    rows.get(bar[0]).push(bar);
  }
  const frag = document.createDocumentFragment();
  const scale = el("div", { class: "tl-row tl-scale", "aria-hidden": "true" });
  scale.append(el("span", { class: "tl-label" }, ""), el("span", { class: "tl-track" }, `0 — ${duration(total)}`));
  frag.append(scale);
  let count = 0;
  for (const [step, attempts] of rows) {
    if (count++ >= MAX_ROWS) break;
    const row = el("div", { class: "tl-row", role: "listitem", "data-row": step });
    row.append(el("span", { class: "tl-label", title: step }, step));
    const track = el("span", { class: "tl-track" });
    for (const [, attempt, round, queued, started, ended, status, worker] of attempts) {
      const end = ended ?? data.now;
      const from = queued ?? started;
      const bar = el("span", {
        class: `bar st-${status}`, "data-step": step, "data-attempt": attempt, "data-round": round,
        "data-critical": critical.has(step) ? "true" : "false", tabindex: 0, role: "button",
        title: `${step} attempt ${attempt}: waited ${duration(started - from)}, ran ${duration(end - started)} — ${status}${worker ? ` on ${worker}` : ""}`,
      });
      bar.style.left = pct(from);
      bar.style.width = `${Math.max(((end - from) / total) * 100, 0.3).toFixed(3)}%`;
      const wait = el("span", { class: "seg wait" });
      wait.style.width = `${(((started - from) / Math.max(end - from, 0.001)) * 100).toFixed(2)}%`;
      bar.append(wait, el("span", { class: "seg busy" }));
      track.append(bar);
    }
    row.append(track);
    frag.append(row);
  }
  box.replaceChildren(frag);
  const note = field(main, "timeline-note");
  const cut = rows.size > MAX_ROWS || data.truncated;
  note.hidden = !cut;
  setText(note, cut ? `Showing ${Math.min(rows.size, MAX_ROWS)} of ${rows.size} steps.` : "");
}

const timeline = q("[data-testid=timeline]");
timeline.addEventListener("click", (e) => { const b = e.target.closest(".bar"); if (b) showStep(b.dataset.step); });
timeline.addEventListener("keydown", (e) => {
  const b = e.target.closest(".bar");
  if (b && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); showStep(b.dataset.step); }
});

async function refreshTimeline() {
  const got = await getJSON(`${base}/timeline`, timelineTag);
  if (!got.changed) return;
  timelineTag = got.etag;
  renderTimeline(got.data);
}

// --- events ------------------------------------------------------------------------------------

function describe(ev) {
  const parts = [ev.event];
  if (ev.step) parts.push(ev.step);
  if (ev.attempt) parts.push(`attempt ${ev.attempt}`);
  if (ev.worker) parts.push(`on ${ev.worker}`);
  if (ev.by) parts.push(`by ${ev.by}`);
  if (ev.trigger) parts.push(`(${ev.trigger})`);
  if (ev.status) parts.push(`→ ${ev.status}`);
  if (ev.error) parts.push(`— ${ev.error.type}: ${ev.error.message}`);
  return parts.join(" ");
}

async function refreshEvents() {
  const list = q("[data-testid=events]");
  for (;;) {
    const after = lastEvent ? `?after=${encodeURIComponent(lastEvent)}` : "";
    const { data } = await getJSON(`${base}/events${after}`);
    const frag = document.createDocumentFragment();
    for (const ev of data.events) {
      lastEvent = ev.id;
      if (shownEvents >= MAX_EVENTS) continue;
      shownEvents++;
      const li = el("li", { "data-event": ev.event });
      li.append(el("time", { datetime: ev.at }, when(ev.at)), document.createTextNode(" "), el("span", {}, describe(ev)));
      frag.append(li);
    }
    list.append(frag);
    if (!data.more) break;
  }
  const note = field(main, "events-note");
  note.hidden = shownEvents < MAX_EVENTS;
  setText(note, shownEvents >= MAX_EVENTS ? `Showing the first ${MAX_EVENTS} events (GET /v1/runs/{id}/events has all).` : "");
}

// --- polling -----------------------------------------------------------------------------------

async function refresh() {
  const got = await getJSON(`${base}/state`, stateTag);
  if (!got.changed) {
    if (current && !current.finished) header({ ...current, now: Date.now() / 1000 });
    return;
  }
  stateTag = got.etag;
  current = got.data;
  header(current);
  dag.update(current.steps);
  await Promise.all([refreshTimeline(), refreshEvents()]);
  if (selected) {
    const key = JSON.stringify(current.steps[selected]);
    if (key !== detailKey) { detailKey = key; await showStep(selected); }
  }
  if (current.finished) poller.stop();
}

function startPolling() {
  poller?.stop();
  poller = poll(refresh, 1000);
}

// --- cancel and retry --------------------------------------------------------------------------

const dialog = q("dialog[data-testid=confirm]");
let pending = null;

function ask(action) {
  pending = action;
  setText(field(dialog, "question"), action === "cancel"
    ? "Cancel this run? Queued steps are revoked and nothing new starts."
    : "Retry this run? Failed, cancelled and unfinished steps run again.");
  dialog.showModal();
}

dialog.addEventListener("close", async () => {
  const action = pending;
  pending = null;
  if (dialog.returnValue !== "yes" || !action) return;
  dialog.returnValue = "";
  const result = await post(`${base}/${action}`);
  if (!result.ok) { flash(result.message); return; }
  flash(action === "cancel" ? "Run cancelled." : "Run retried.", "ok");
  startPolling();
});
q("[data-testid=cancel]").addEventListener("click", () => ask("cancel"));
q("[data-testid=retry]").addEventListener("click", () => ask("retry"));

// --- start -------------------------------------------------------------------------------------

async function start() {
  const { data } = await getJSON(base);
  graph = data.graph;
  flowerUrl = data.flower_url;
  dag = drawDag(q("svg[data-testid=dag]"), graph, { onSelect: showStep });
  edgeToggle(q("[data-testid=edges-toggle]"), dag, graph);
  if (!graph.edges_default) {
    const note = field(main, "dag-note");
    note.hidden = false;
    note.textContent = `${graph.nodes.length} steps in ${graph.levels} levels: edges are off until you show them.`;
  }
  startPolling();
}

start().catch((err) => flash(String(err.message || err)));
