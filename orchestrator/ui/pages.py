"""The UI's HTML, built in Python with every value escaped; the pages' scripts fill in the live parts.

No template engine is installed, so each page is a function returning a string, and every piece
of data goes through :func:`esc` (text and attribute values alike). Pages carry no inline script
or style: what a script needs (a run id, a workflow name) is a ``data-`` attribute of ``<main>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from orchestrator.api.auth import Caller
from orchestrator.api.schemas import WorkflowSummary
from orchestrator.engine.records import RunStatus, RunSummary, StepStatus, Trigger

GLYPHS = {
    StepStatus.PENDING: "○",
    StepStatus.QUEUED: "◔",
    StepStatus.RUNNING: "▶",
    StepStatus.RETRYING: "↻",
    StepStatus.SUCCEEDED: "✓",
    StepStatus.FAILED: "✗",
    StepStatus.SKIPPED: "⤼",
    StepStatus.CANCELLED: "⊘",
}
"""A shape per status beside its colour, so the state does not rest on colour alone."""


def esc(value: object) -> str:
    """Text or an attribute value, escaped (quotes too)."""
    return escape("" if value is None else str(value), quote=True)


def shell(title: str, body: str, caller: Caller | None, script: str | None = None, **data: str) -> str:
    """A whole page: head, the nav, ``body`` in ``<main>`` (with ``data-*`` attributes), the page's script."""
    attrs = "".join(f' data-{esc(k.replace("_", "-"))}="{esc(v)}"' for k, v in data.items())
    nav = ""
    if caller is not None:
        nav = (
            '<nav class="nav" aria-label="Main"><a class="brand" href="/ui/runs">orchestrator</a>'
            '<a href="/ui/runs">Runs</a><a href="/ui/workflows">Workflows</a>'
            f'<span class="who" title="scope {esc(caller.scope.value)}">'
            f"{esc(caller.name)} · {esc(caller.scope.value)}</span>"
            '<a href="/ui/logout">Log out</a></nav>'
        )
    tag = f'<script type="module" src="/ui/static/{esc(script)}"></script>' if script else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f'<title>{esc(title)} · orchestrator</title><link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="/ui/static/app.css">{tag}</head>'
        f'<body>{nav}<main id="app"{attrs}>'
        '<div data-testid="flash" class="flash" role="alert" hidden></div>'
        f"{body}</main></body></html>"
    )


def login(error: str | None, next_path: str) -> str:
    problem = f'<p class="flash error" role="alert">{esc(error)}</p>' if error else ""
    body = (
        '<section class="login"><h1>Log in</h1>'
        f"{problem}"
        '<form method="post" action="/ui/login" class="stack">'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        '<label for="token">API token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>'
        '<button type="submit">Log in</button>'
        '<p class="hint">A token of ORCH_API_TOKENS; its scope decides what you may do (admin: cancel, retry).</p>'
        "</form></section>"
    )
    return shell("Log in", body, None)


def _options(name: str, values: Iterable[str], chosen: str | None) -> str:
    opts = ['<option value="">any</option>']
    opts += [f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(v)}</option>' for v in values]
    return f'<select name="{name}" id="f-{name}">{"".join(opts)}</select>'


RUN_COLUMNS = ("Run", "Workflow", "Status", "Trigger", "Started by", "Duration", "Created")


def runs_table(testid: str, rows: Iterable[RunSummary] = ()) -> str:
    head = "".join(f'<th scope="col">{c}</th>' for c in RUN_COLUMNS)
    body = "".join(run_row(r) for r in rows)
    return (
        f'<div class="table-wrap"><table data-testid="{testid}" class="runs">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def run_row(run: RunSummary) -> str:
    """A row as the scripts also build it (``common.js``), so server and live rows look alike."""
    cells = [
        ("run", f'<a href="/ui/runs/{esc(run.run_id)}">{esc(run.run_id)}</a>'),
        ("workflow", esc(run.workflow)),
        ("status", f'<span class="badge st-{esc(run.status.value)}">{esc(run.status.value)}</span>'),
        ("trigger", esc(run.trigger.value)),
        ("started_by", esc(run.started_by or "")),
        ("duration", ""),
        ("created", f'<time datetime="{esc(run.created_at)}">{esc(run.created_at)}</time>'),
    ]
    tds = "".join(f'<td data-field="{k}">{v}</td>' for k, v in cells)
    return f'<tr data-run-id="{esc(run.run_id)}">{tds}</tr>'


def runs(caller: Caller, query: Mapping[str, str]) -> str:
    body = (
        "<h1>Runs</h1>"
        '<form data-testid="filters" class="filters" method="get" action="/ui/runs">'
        f'<div class="field"><label for="f-status">Status</label>'
        f"{_options('status', [s.value for s in RunStatus], query.get('status'))}</div>"
        f'<div class="field"><label for="f-trigger">Trigger</label>'
        f"{_options('trigger', [t.value for t in Trigger], query.get('trigger'))}</div>"
        '<div class="field"><label for="f-workflow">Workflow</label>'
        f'<input id="f-workflow" name="workflow" value="{esc(query.get("workflow", ""))}" maxlength="200"></div>'
        '<div class="field"><label for="f-since">Since</label>'
        f'<input id="f-since" name="since" value="{esc(query.get("since", ""))}" placeholder="1h, 2024-05-01T00:00Z">'
        '</div><div class="field buttons"><button type="submit">Filter</button>'
        '<a href="/ui/runs">Clear</a></div></form>'
        f"{runs_table('runs')}"
        '<p class="pager"><span data-field="count"></span> <a data-testid="older" href="#" hidden>Older runs →</a></p>'
    )
    return shell("Runs", body, caller, "runs.js", page="runs")


def legend() -> str:
    items = "".join(
        f'<li><span class="swatch st-{s.value}" aria-hidden="true">{g}</span>{s.value}</li>' for s, g in GLYPHS.items()
    )
    return f'<ul class="legend" aria-label="Step statuses">{items}</ul>'


def dag_panel() -> str:
    return (
        '<section class="panel"><div class="panel-head"><h2>Graph</h2>'
        f'{legend()}<button type="button" data-testid="edges-toggle" class="small" hidden>Show edges</button></div>'
        '<p class="hint" data-field="dag-note" hidden></p>'
        '<div class="dag-scroll"><svg data-testid="dag" class="dag" role="group" aria-label="Steps"></svg></div>'
        "</section>"
    )


_DETAIL_FIELDS = (
    ("Status", "status"),
    ("Task", "task"),
    ("Attempts", "attempts"),
    ("Worker", "worker"),
    ("Task id", "task-id"),
    ("Started", "started"),
    ("Finished", "finished"),
    ("Took", "took"),
    ("Items", "items"),
    ("Idempotency key", "idempotency-key"),
    ("Error type", "error-type"),
    ("Error message", "error-message"),
)


def run(caller: Caller, summary: RunSummary) -> str:
    facts = "".join(
        f"<dt>{label}</dt><dd data-field='{key}'>{value}</dd>"
        for label, key, value in (
            ("Workflow", "workflow", f'<a href="/ui/workflows/{esc(summary.workflow)}">{esc(summary.workflow)}</a>'),
            ("Trigger", "trigger", esc(summary.trigger.value)),
            ("Started by", "started_by", esc(summary.started_by or "")),
            ("Created", "created", f'<time datetime="{esc(summary.created_at)}">{esc(summary.created_at)}</time>'),
            ("Started", "started", esc(summary.started_at or "")),
            ("Finished", "finished", esc(summary.finished_at or "")),
            ("Duration", "duration", ""),
        )
    )
    params = json.dumps(summary.params, indent=2, ensure_ascii=False)
    detail = "".join(f'<dt>{label}</dt><dd data-field="{key}"></dd>' for label, key in _DETAIL_FIELDS)
    body = (
        '<header class="run-head">'
        f"<h1>Run <code>{esc(summary.run_id)}</code> "
        f'<span data-testid="run-status" class="badge st-{esc(summary.status.value)}">'
        f"{esc(summary.status.value)}</span></h1>"
        f'<dl class="facts">{facts}</dl>'
        f"<details><summary>Params</summary><pre>{esc(params)}</pre></details>"
        '<div class="actions">'
        '<button type="button" data-testid="cancel" class="danger" hidden>Cancel run</button>'
        '<button type="button" data-testid="retry" hidden>Retry run</button></div></header>'
        f"{dag_panel()}"
        '<section data-testid="step-detail" class="panel detail" hidden aria-live="polite">'
        '<div class="panel-head"><h2>Step <code data-field="name"></code></h2>'
        '<button type="button" class="small" data-field="close">Close</button></div>'
        f'<dl class="facts">{detail}</dl>'
        '<h3>Output</h3><p class="hint" data-field="output-note" hidden></p><pre data-field="output"></pre></section>'
        '<section class="panel"><div class="panel-head"><h2>Timeline</h2>'
        '<ul class="legend"><li><span class="swatch wait" aria-hidden="true"></span>queued</li>'
        '<li><span class="swatch busy" aria-hidden="true"></span>running</li>'
        '<li><span class="swatch crit" aria-hidden="true"></span>critical path</li></ul></div>'
        '<p class="hint" data-field="timeline-note" hidden></p>'
        '<div data-testid="timeline" class="timeline" role="list"></div></section>'
        '<section class="panel"><h2>Events</h2><p class="hint" data-field="events-note" hidden></p>'
        '<ol data-testid="events" class="events"></ol></section>'
        '<dialog data-testid="confirm"><form method="dialog"><p data-field="question"></p>'
        '<div class="actions"><button data-testid="confirm-yes" value="yes" class="danger">Yes</button>'
        '<button data-testid="confirm-no" value="no" autofocus>No</button></div></form></dialog>'
    )
    return shell(f"Run {summary.run_id}", body, caller, "run.js", page="run", run_id=summary.run_id)


def workflows(caller: Caller, found: Iterable[WorkflowSummary]) -> str:
    rows = "".join(
        f'<tr><td><a href="/ui/workflows/{esc(w.name)}">{esc(w.name)}</a></td><td>{esc(w.version or "")}</td>'
        f"<td>{w.step_count}</td><td>{esc(w.description or '')}</td></tr>"
        for w in found
    )
    body = (
        '<h1>Workflows</h1><div class="table-wrap"><table data-testid="workflows"><thead><tr>'
        '<th scope="col">Name</th><th scope="col">Version</th><th scope="col">Steps</th>'
        f'<th scope="col">Description</th></tr></thead><tbody>{rows}</tbody></table></div>'
    )
    return shell("Workflows", body, caller)


def _params(schema: Mapping[str, Any]) -> str:
    props: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    if not props:
        return '<p class="hint">No params.</p>'
    rows = "".join(
        f"<tr><td><code>{esc(name)}</code></td><td>{esc(spec.get('type', 'any'))}</td>"
        f"<td>{esc(json.dumps(spec['default'])) if 'default' in spec else ''}</td>"
        f"<td>{'yes' if name in required else ''}</td></tr>"
        for name, spec in props.items()
    )
    return (
        '<div class="table-wrap"><table data-testid="params"><thead><tr><th scope="col">Param</th>'
        '<th scope="col">Type</th><th scope="col">Default</th><th scope="col">Required</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _schedules(info: WorkflowSummary) -> str:
    if not info.schedules:
        return '<p class="hint">No schedules.</p>'
    rows = "".join(
        f"<tr><td>{esc(s.name)}</td><td><code>{esc(s.cron or f'every {s.every}s')}</code></td>"
        f"<td>{esc(s.timezone)}</td>"
        f"<td>{esc(s.overlap)}</td><td>{'<br>'.join(f'<time>{esc(t)}</time>' for t in s.next)}</td></tr>"
        for s in info.schedules
    )
    return (
        '<div class="table-wrap"><table data-testid="schedules"><thead><tr><th scope="col">Name</th>'
        '<th scope="col">When</th><th scope="col">Time zone</th><th scope="col">Overlap</th>'
        f'<th scope="col">Next fire times</th></tr></thead><tbody>{rows}</tbody></table></div>'
    )


def _triggers(info: WorkflowSummary) -> str:
    hook = (
        f"<p><code>POST /v1/hooks/{esc(info.webhook.name)}</code> ({esc(info.webhook.scheme)} signatures)"
        + (f", when <code>{esc(info.webhook.when)}</code>" if info.webhook.when else "")
        + "</p>"
        if info.webhook
        else '<p class="hint">No webhook.</p>'
    )
    sensor = (
        f"<p>Task <code>{esc(info.sensor.task)}</code> every {esc(info.sensor.every)}s, when "
        f"<code>{esc(info.sensor.when)}</code>, cooldown {esc(info.sensor.cooldown)}s</p>"
        if info.sensor
        else '<p class="hint">No sensor.</p>'
    )
    return f'<section class="panel" data-testid="webhook"><h2>Webhook</h2>{hook}</section>' + (
        f'<section class="panel" data-testid="sensor"><h2>Sensor</h2>{sensor}</section>'
    )


def workflow(caller: Caller, info: WorkflowSummary, recent: Iterable[RunSummary]) -> str:
    version = f" <small>v{esc(info.version)}</small>" if info.version is not None else ""
    body = (
        f"<h1>Workflow <code>{esc(info.name)}</code>{version}</h1>"
        f"<p>{esc(info.description or '')}</p>"
        f"{dag_panel()}"
        f'<section class="panel"><h2>Params</h2>{_params(info.params)}</section>'
        f'<section class="panel"><h2>Schedules</h2>{_schedules(info)}</section>'
        f"{_triggers(info)}"
        f'<section class="panel"><h2>Recent runs</h2>{runs_table("recent-runs", recent)}'
        f'<p><a href="/ui/runs?workflow={esc(info.name)}">All runs of {esc(info.name)} →</a></p></section>'
    )
    return shell(f"Workflow {info.name}", body, caller, "workflow.js", page="workflow", workflow=info.name)


def not_found(caller: Caller, message: str) -> str:
    return shell("Not found", f'<h1>Not found</h1><p class="flash error">{esc(message)}</p>', caller)
