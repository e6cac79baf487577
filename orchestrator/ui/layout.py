"""Where the run page draws things: DAG levels and positions, attempt bars, the critical path. Pure.

The DAG is laid out in layers by topological level (the longest chain of needs above a step),
each layer ordered by the mean position of its needs (one barycentre pass: cheap and it removes
most crossings), wrapped into rows of at most ``per_row`` nodes so a 10,000-wide level scrolls
instead of stretching. Linear in steps plus edges: a 10,000-step layout takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from orchestrator.definition.graph import Dag
from orchestrator.engine.records import EventKind, RunEvent

NODE_W, NODE_H = 168, 48
GAP_X, GAP_Y, ROW_GAP = 24, 56, 16
PER_ROW = 24
EDGE_LIMIT = 2000
"""Above this many steps the page draws no edges until asked (level of detail)."""


@dataclass(frozen=True)
class Node:
    """A step's box: its level, and its top-left corner in the SVG's coordinates."""

    name: str
    level: int
    x: int
    y: int


@dataclass(frozen=True)
class Layout:
    nodes: list[Node]
    width: int
    height: int
    levels: int


def levels(needs: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each step's level: 0 for steps without needs, else one more than its deepest need.

    Raises:
        ValueError: the graph has a cycle.
    """
    dag = Dag({name: tuple(preds) for name, preds in needs.items()})
    level: dict[str, int] = {}
    for name in dag.order:
        level[name] = 1 + max((level[p] for p in dag.needs[name]), default=-1)
    return level


def layout(needs: Mapping[str, Sequence[str]], per_row: int = PER_ROW) -> Layout:
    """Positions for every step: layers top to bottom, each wrapped at ``per_row`` nodes per row."""
    level = levels(needs)
    layers: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for name, lv in level.items():
        layers[lv].append(name)
    column: dict[str, float] = {}
    nodes: list[Node] = []
    y = 0
    widest = 0
    for lv, members in enumerate(layers):
        if lv:  # barycentre of the needs' columns; stable for ties (definition order)
            members.sort(key=lambda n: sum(column[p] for p in needs[n]) / len(needs[n]) if needs[n] else 0.0)
        for index, name in enumerate(members):
            row, col = divmod(index, per_row)
            column[name] = col + row * 0.001
            nodes.append(Node(name, lv, col * (NODE_W + GAP_X), y + row * (NODE_H + ROW_GAP)))
        rows = -(-len(members) // per_row)
        widest = max(widest, min(len(members), per_row))
        y += rows * (NODE_H + ROW_GAP) - ROW_GAP + GAP_Y
    width = max(widest * (NODE_W + GAP_X) - GAP_X, NODE_W)
    return Layout(nodes, width, max(y - GAP_Y, NODE_H), len(layers))


def as_json(result: Layout, needs: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The layout as the pages' scripts read it: nodes as ``[name, level, x, y]`` and edges by index."""
    index = {node.name: i for i, node in enumerate(result.nodes)}
    return {
        "width": result.width,
        "height": result.height,
        "levels": result.levels,
        "node": {"w": NODE_W, "h": NODE_H},
        "nodes": [[n.name, n.level, n.x, n.y] for n in result.nodes],
        "edges": [[index[p], index[n.name]] for n in result.nodes for p in needs[n.name]],
        "edges_default": len(result.nodes) <= EDGE_LIMIT,
    }


@dataclass(frozen=True)
class Bar:
    """One attempt of a step on the timeline: queued (waiting), started, ended (None: still going).

    Attributes:
        round: 0 for the run's first go, one more after each retry of the whole run.
        status: How the attempt ended (``retrying`` when another attempt followed), or ``running``.
    """

    step: str
    attempt: int
    round: int
    queued: float | None
    started: float
    ended: float | None
    status: str
    worker: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


_ENDS = {EventKind.SUCCEEDED, EventKind.FAILED, EventKind.CANCELLED}
_WAITS = {EventKind.QUEUED, EventKind.RETRYING, EventKind.DEFERRED}


def epoch(text: str) -> float:
    """An ISO-8601 time as epoch seconds."""
    return datetime.fromisoformat(text).timestamp()


def attempt_bars(events: Sequence[RunEvent]) -> list[Bar]:
    """The attempts a run's history shows, one bar each, in the order they started.

    A step waits from ``queued`` (or the ``retrying``/``deferred`` that ended its last attempt) to
    ``started``; an attempt runs from ``started`` to the next ending event of its step.
    """
    waiting: dict[str, float] = {}
    open_: dict[str, Bar] = {}
    done: list[Bar] = []
    round_ = 0

    def close(step: str, at: float, status: str) -> None:
        bar = open_.pop(step, None)
        if bar is not None:
            done.append(Bar(bar.step, bar.attempt, bar.round, bar.queued, bar.started, at, status, bar.worker))

    for ev in events:
        if ev.event is EventKind.RETRIED:
            round_ += 1
            continue
        if ev.step is None:
            continue
        at = epoch(ev.at)
        if ev.event in (EventKind.STARTED, EventKind.RECOVERED):
            close(ev.step, at, "lost")
            attempt = ev.attempt or 1
            open_[ev.step] = Bar(ev.step, attempt, round_, waiting.pop(ev.step, None), at, None, "running", ev.worker)
        elif ev.event in _WAITS:
            close(ev.step, at, ev.event.value)
            waiting[ev.step] = at
        elif ev.event in _ENDS:
            close(ev.step, at, ev.event.value)
            waiting.pop(ev.step, None)
    done.extend(open_.values())
    done.sort(key=lambda b: (b.started, b.step))
    return done


def critical_path(needs: Mapping[str, Sequence[str]], ends: Mapping[str, float]) -> list[str]:
    """The chain of steps that decided when the run ended, first step first.

    It ends at the step that ended last and walks back through, at each step, the need that
    ended last (the one the step waited for). Steps that have not ended are left out.
    """
    if not ends:
        return []
    step: str | None = max(ends, key=lambda s: ends[s])
    path: list[str] = []
    seen: set[str] = set()
    while step is not None and step not in seen:
        path.append(step)
        seen.add(step)
        ended = [p for p in needs.get(step, ()) if p in ends]
        step = max(ended, key=lambda s: ends[s]) if ended else None
    path.reverse()
    return path
