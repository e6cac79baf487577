"""The plan as a plain Celery canvas: what the same workflow costs without the orchestrator.

``orchestrator plan`` uses it to show what a hand-written Celery canvas of the workflow would put
on the wire (nested chords grow their messages with the DAG, celery#5000), and the benchmarks use
it to run the same workflow on plain Celery. A series-parallel DAG maps exactly; a
:class:`~orchestrator.analysis.canvas.Prime` block has no exact canvas, so it is laid out level by level
(``chain(group(level 0), group(level 1), ...)``), which is what one writes by hand and which adds
the false waits the runtime joins avoid.
"""

from __future__ import annotations

import json
from typing import Any

from celery import Celery, chain, group, signature
from celery.canvas import Signature

from orchestrator.analysis import canvas as cv
from orchestrator.definition.graph import Dag
from orchestrator.plan.compiler import Plan


def to_celery(plan: Plan, app: Celery | None = None) -> Signature:
    """A Celery signature running the plan's steps with their args as written (no references resolved)."""

    def task(name: str) -> Signature:
        step = plan.steps[name]
        args = plan.definition.steps[name].args
        return signature(step.task, kwargs=args, app=app, immutable=True, queue=step.policy.queue)

    def build(node: cv.Canvas) -> Signature:
        if isinstance(node, cv.Task):
            return task(node.step)
        if isinstance(node, cv.Group):
            return group([build(item) for item in node.items], app=app)
        if isinstance(node, cv.Chain):
            return chain([build(item) for item in node.items], app=app)
        members = {s for n in node.nodes for s in cv.steps_of(n)}
        levels: dict[int, list[str]] = {}
        block = Dag({m: tuple(p for p in plan.steps[m].needs if p in members) for m in members})
        for name, level in block.levels.items():
            levels.setdefault(level, []).append(name)
        layers = [group([task(n) for n in levels[k]], app=app) for k in sorted(levels)]
        return chain(layers, app=app)

    # An explicit stack is not needed here: canvases a user writes by hand are shallow.
    return build(cv.decompose(plan.dag()))


def canvas_bytes(sig: Signature) -> int:
    """Bytes of the whole canvas as JSON: what its first message carries in the worst case."""
    data: Any = dict(sig)
    return len(json.dumps(data, default=str, separators=(",", ":")))
