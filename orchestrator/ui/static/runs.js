// The runs list: filters from the query string, polled every 2 s (a 304 while nothing changed),
// rows updated in place and new runs added at the top; "older" follows the API's cursor.
import { RunsTable, getJSON, poll, setText } from "./common.js";

const FILTERS = ["workflow", "status", "trigger", "since"];
const params = new URLSearchParams(location.search);
const query = new URLSearchParams();
for (const name of [...FILTERS, "next"]) if (params.get(name)) query.set(name, params.get(name));

const table = new RunsTable(document.querySelector("table[data-testid=runs]"));
const older = document.querySelector("[data-testid=older]");
const count = document.querySelector("[data-field=count]");
let tag = null;

async function refresh() {
  const got = await getJSON(`/ui/api/runs?${query}`, tag);
  if (!got.changed) { table.tick(); return; }
  tag = got.etag;
  table.update(got.data.runs);
  setText(count, got.data.runs.length ? `${got.data.runs.length} runs shown.` : "No runs match.");
  if (got.data.next) {
    const next = new URLSearchParams();
    for (const name of FILTERS) if (query.get(name)) next.set(name, query.get(name));
    next.set("next", got.data.next);
    older.href = `/ui/runs?${next}`;
    older.hidden = false;
  } else {
    older.hidden = true;
  }
}

poll(refresh, 2000);
