"""The Grafana dashboard and the alert rules load, and every metric they name is one we export."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import Counter, Histogram

from orchestrator.observability import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "orchestrator-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
DOCS = ROOT / "docs" / "metrics.md"
NAME = re.compile(r"\borchestrator_[a-z0-9_]+")
SUFFIXES = {Counter: ("_total", "_created"), Histogram: ("_bucket", "_count", "_sum", "_created")}


def exported() -> set[str]:
    """Every sample name our metrics module exports (counters' ``_total``, histograms' ``_bucket``...)."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, Counter | Histogram):
            names |= {value._name + suffix for suffix in SUFFIXES[type(value)]}
        elif isinstance(value, str) and value.startswith("orchestrator_"):
            names.add(value)  # the scrape-time gauges
    return names


def expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for value in node:
            yield from expressions(value)


def test_dashboard_is_json_over_our_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"] and dashboard["uid"]
    used = {name for expr in expressions(dashboard) for name in NAME.findall(expr)}
    assert used and used <= exported(), used - exported()
    for wanted in ("runs_finished_total", "step_duration_seconds_bucket", "dispatch_lag_seconds_bucket"):
        assert f"orchestrator_{wanted}" in used
    assert {"orchestrator_queue_depth", "orchestrator_dead_letters_total", "orchestrator_step_recoveries_total"} <= used


def test_alert_rules_load_and_use_our_metrics() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert len({rule["alert"] for rule in rules}) == len(rules) >= 5
    for rule in rules:
        used = set(NAME.findall(rule["expr"]))
        assert used and used <= exported(), (rule["alert"], used - exported())
        assert rule["annotations"]["summary"]


def test_docs_list_every_metric_and_alert() -> None:
    text = DOCS.read_text()
    listed = {n for n in exported() if n.endswith("_total") or not n.endswith(("_created", "_count", "_sum"))}
    listed = {n.removesuffix("_bucket") for n in listed}
    assert {n for n in listed if n not in text} == set()
    for rule in (r for group in yaml.safe_load(ALERTS.read_text())["groups"] for r in group["rules"]):
        assert rule["alert"] in text
