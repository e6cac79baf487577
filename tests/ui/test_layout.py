"""The run page's pure layout: DAG levels and positions, attempt bars from a history, the critical path."""

from __future__ import annotations

import time

from hypothesis import given, settings

from orchestrator.definition.graph import Dag
from orchestrator.engine.records import EventKind, RunEvent
from orchestrator.ui.layout import (
    GAP_X,
    NODE_H,
    NODE_W,
    as_json,
    attempt_bars,
    critical_path,
    layout,
    levels,
)
from tests.strategies import dags

DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ()}


def test_a_level_is_one_more_than_the_deepest_need() -> None:
    assert levels(DIAMOND) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 0}
    assert levels({"x": (), "y": ("x",), "z": ("x", "y")}) == {"x": 0, "y": 1, "z": 2}


@settings(max_examples=60, deadline=None)
@given(dags(max_nodes=120))
def test_every_step_sits_below_all_its_needs_and_no_two_overlap(dag: Dag) -> None:
    placed = layout(dag.needs, per_row=7)
    where = {n.name: n for n in placed.nodes}
    assert set(where) == set(dag.needs)
    for name, preds in dag.needs.items():
        for pred in preds:
            assert where[pred].level < where[name].level
            assert where[pred].y + NODE_H <= where[name].y
    corners = {(n.x, n.y) for n in placed.nodes}
    assert len(corners) == len(placed.nodes)
    assert all(0 <= n.x <= placed.width - NODE_W and 0 <= n.y <= placed.height - NODE_H for n in placed.nodes)


def test_a_wide_level_wraps_into_rows_of_the_cap() -> None:
    needs = {"root": (), **{f"s{i}": ("root",) for i in range(50)}}
    placed = layout(needs, per_row=20)
    second = [n for n in placed.nodes if n.level == 1]
    assert len({n.y for n in second}) == 3  # 20 + 20 + 10
    assert max(n.x for n in second) == 19 * (NODE_W + GAP_X)
    assert placed.width == 20 * (NODE_W + GAP_X) - GAP_X


def test_a_layer_is_ordered_by_its_needs_positions() -> None:
    needs = {"l": (), "r": (), "under_r": ("r",), "under_l": ("l",)}
    placed = {n.name: n for n in layout(needs).nodes}
    assert placed["under_l"].x < placed["under_r"].x


def test_the_json_gives_nodes_and_edges_by_index() -> None:
    drawn = as_json(layout(DIAMOND), DIAMOND)
    names = [n[0] for n in drawn["nodes"]]
    edges = {(names[a], names[b]) for a, b in drawn["edges"]}
    assert edges == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
    assert drawn["edges_default"] is True


def test_ten_thousand_steps_are_laid_out_fast_without_edges_by_default() -> None:
    needs = {f"s{i}": ((f"s{i - 1}",) if i % 100 else ()) for i in range(10_000)}
    started = time.perf_counter()
    drawn = as_json(layout(needs), needs)
    assert time.perf_counter() - started < 2.0
    assert len(drawn["nodes"]) == 10_000
    assert drawn["edges_default"] is False


def ev(n: int, at: float, kind: EventKind, step: str | None = None, **fields: object) -> RunEvent:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000 + at)) + f".{int(at % 1 * 1e6):06d}+00:00"
    return RunEvent(id=f"{n}-0", at=stamp, event=kind, step=step, **fields)


def test_every_attempt_is_a_bar_with_its_queue_wait() -> None:
    history = [
        ev(1, 0, EventKind.SUBMITTED, by="token:ops"),
        ev(2, 0, EventKind.QUEUED, "a"),
        ev(3, 1, EventKind.STARTED, "a", attempt=1, worker="w1"),
        ev(4, 2, EventKind.RETRYING, "a", attempt=1),
        ev(5, 4, EventKind.STARTED, "a", attempt=2, worker="w2"),
        ev(6, 5, EventKind.SUCCEEDED, "a"),
        ev(7, 5, EventKind.QUEUED, "b"),
        ev(8, 5.5, EventKind.STARTED, "b", attempt=1),
    ]
    bars = attempt_bars(history)
    assert [(b.step, b.attempt, b.status) for b in bars] == [
        ("a", 1, "retrying"),
        ("a", 2, "succeeded"),
        ("b", 1, "running"),
    ]
    first, second, running = bars
    assert first.started - (first.queued or 0) == 1 and first.ended is not None and first.ended - first.started == 1
    assert second.queued is not None and second.started - second.queued == 2
    assert running.ended is None and second.worker == "w2"


def test_a_retried_run_starts_a_new_round() -> None:
    history = [
        ev(1, 0, EventKind.QUEUED, "a"),
        ev(2, 1, EventKind.STARTED, "a", attempt=1),
        ev(3, 2, EventKind.FAILED, "a"),
        ev(4, 3, EventKind.RETRIED, by="token:ops"),
        ev(5, 3, EventKind.QUEUED, "a"),
        ev(6, 4, EventKind.STARTED, "a", attempt=1),
        ev(7, 5, EventKind.SUCCEEDED, "a"),
    ]
    assert [(b.attempt, b.round, b.status) for b in attempt_bars(history)] == [(1, 0, "failed"), (1, 1, "succeeded")]


def test_the_critical_path_walks_back_from_the_last_end_through_the_latest_need() -> None:
    needs = {"first": (), "flap": ("first",), "side": (), "join": ("flap", "side")}
    assert critical_path(needs, {"first": 1, "flap": 5, "side": 2, "join": 6}) == ["first", "flap", "join"]
    assert critical_path(needs, {"first": 1, "side": 9}) == ["side"]
    assert critical_path(needs, {}) == []
