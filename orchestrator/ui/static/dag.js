// The DAG as SVG, from the layout the server computed (layers by topological level, wrapped rows).
// Drawn once; a poll only changes attributes and text of the nodes whose state changed.
import { GLYPHS, setText, svg } from "./common.js";

const PAD = 12;
const NAME_CHARS = 22;

function short(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

function edgePath(graph, edges) {
  const { w, h } = graph.node;
  const parts = [];
  for (const [from, to] of edges) {
    const a = graph.nodes[from], b = graph.nodes[to];
    const x1 = a[2] + w / 2, y1 = a[3] + h, x2 = b[2] + w / 2, y2 = b[3];
    const mid = (y1 + y2) / 2;
    parts.push(`M${x1} ${y1}C${x1} ${mid} ${x2} ${mid} ${x2} ${y2}`);
  }
  return parts.join("");
}

/**
 * Draw `graph` ({nodes: [[name, level, x, y]], edges: [[from, to]], steps, node: {w, h}}) into `root`.
 * Returns {update(steps), select(name), setEdges(on)}; onSelect(name) is called on click, Enter or Space.
 */
export function drawDag(root, graph, { onSelect = null, statuses = true } = {}) {
  const { w, h } = graph.node;
  const width = graph.width + 2 * PAD, height = graph.height + 2 * PAD;
  root.setAttribute("viewBox", `${-PAD} ${-PAD} ${width} ${height}`);
  root.setAttribute("width", width);
  root.setAttribute("height", height);
  root.replaceChildren();

  const edges = svg("g", { class: "edges", "aria-hidden": "true" });
  const plain = graph.edges.filter(([, to]) => graph.steps[graph.nodes[to][0]].rule === "all_success");
  const ruled = graph.edges.filter(([, to]) => graph.steps[graph.nodes[to][0]].rule !== "all_success");
  const drawn = { done: false };
  const drawEdges = () => {
    if (drawn.done) return;
    edges.append(svg("path", { class: "edge", d: edgePath(graph, plain) }));
    if (ruled.length) edges.append(svg("path", { class: "edge ruled", d: edgePath(graph, ruled) }));
    drawn.done = true;
  };
  root.append(edges);

  const nodes = new Map();
  const layer = svg("g", { class: "nodes" });
  for (const [name, level, x, y] of graph.nodes) {
    const info = graph.steps[name];
    const g = svg("g", {
      "data-step": name, "data-status": statuses ? "pending" : null, "data-level": level,
      transform: `translate(${x} ${y})`, tabindex: 0, role: "button",
      class: `node${info.for_each ? " fan" : ""}${statuses ? " st-pending" : ""}`,
      "aria-label": `${name} (${info.task})`,
    });
    g.append(svg("title", {}, `${name}\n${info.task}${info.when ? `\nwhen ${info.when}` : ""}`));
    if (info.for_each) g.append(svg("rect", { class: "stack", x: 4, y: 4, width: w, height: h, rx: 6 }));
    g.append(svg("rect", { class: "box", width: w, height: h, rx: 6 }));
    g.append(svg("text", { class: "name", x: 10, y: 19 }, short(name, NAME_CHARS)));
    const sub = svg("text", { class: "sub", x: 10, y: 37 });
    const state = svg("tspan", { "data-field": "state" }, statuses ? `${GLYPHS.pending} pending` : short(info.task, NAME_CHARS));
    sub.append(state);
    let items = null;
    if (info.for_each) {
      items = svg("tspan", { "data-field": "items", dx: 8 }, statuses ? "0/? items" : "for each");
      sub.append(items);
    }
    g.append(sub);
    layer.append(g);
    nodes.set(name, { g, state, items, key: "" });
  }
  root.append(layer);

  const pick = (event) => {
    const g = event.target.closest?.("g[data-step]");
    if (g && onSelect) onSelect(g.dataset.step);
  };
  root.addEventListener("click", pick);
  root.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); pick(event); }
  });

  const showEdges = (on) => edges.setAttribute("display", on ? "inline" : "none");
  if (graph.edges_default) drawEdges();
  showEdges(graph.edges_default);
  let selected = null;

  return {
    nodes,
    /** steps: {name: [status, attempts, items, items_done, ...]}; touches only nodes that changed. */
    update(steps) {
      for (const [name, entry] of Object.entries(steps)) {
        const node = nodes.get(name);
        if (!node) continue;
        const [status, attempts, items, done] = entry;
        const key = `${status}|${attempts}|${items}|${done}`;
        if (key === node.key) continue;
        node.key = key;
        if (node.g.dataset.status !== status) {
          node.g.dataset.status = status;
          node.g.setAttribute("class", `node${node.items ? " fan" : ""} st-${status}${name === selected ? " selected" : ""}`);
        }
        setText(node.state, `${GLYPHS[status] || "?"} ${status}${attempts > 1 ? ` · try ${attempts}` : ""}`);
        if (node.items) setText(node.items, `${done ?? 0}/${items ?? "?"} items`);
      }
    },
    select(name) {
      if (selected) nodes.get(selected)?.g.classList.remove("selected");
      selected = name;
      nodes.get(name)?.g.classList.add("selected");
    },
    setEdges(on) {
      if (on) drawEdges();
      showEdges(on);
    },
    edgesShown: () => edges.getAttribute("display") !== "none",
  };
}

/** Wire the "Show edges" toggle of a panel to a drawn DAG. */
export function edgeToggle(button, dag, graph) {
  if (!graph.edges.length) return;
  button.hidden = false;
  const label = () => setText(button, dag.edgesShown() ? "Hide edges" : `Show edges (${graph.edges.length})`);
  label();
  button.addEventListener("click", () => { dag.setEdges(!dag.edgesShown()); label(); });
}
