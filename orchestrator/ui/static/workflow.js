// The workflow page: its DAG (the run page's renderer, without states) and its recent runs, polled.
import { drawDag, edgeToggle } from "./dag.js";
import { RunsTable, flash, getJSON, poll } from "./common.js";

const main = document.getElementById("app");
const name = main.dataset.workflow;

async function start() {
  const { data } = await getJSON(`/ui/api/workflows/${encodeURIComponent(name)}/graph`);
  const dag = drawDag(document.querySelector("svg[data-testid=dag]"), data.graph, { statuses: false });
  edgeToggle(document.querySelector("[data-testid=edges-toggle]"), dag, data.graph);
}

const table = new RunsTable(document.querySelector("table[data-testid=recent-runs]"));
let tag = null;
poll(async () => {
  const got = await getJSON(`/ui/api/runs?workflow=${encodeURIComponent(name)}&limit=20`, tag);
  if (!got.changed) { table.tick(); return; }
  tag = got.etag;
  table.update(got.data.runs);
}, 5000);

start().catch((err) => flash(String(err.message || err)));
