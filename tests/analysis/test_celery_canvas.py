"""The plan as a plain Celery canvas (for `plan` and the benchmarks)."""

from __future__ import annotations

from celery import Celery
from celery.canvas import _chain, _chord, group

from orchestrator.analysis.celery_canvas import canvas_bytes, to_celery
from orchestrator.analysis.report import report
from orchestrator.definition.models import Step, Workflow
from orchestrator.plan.compiler import compile_workflow


def _plan(needs: dict[str, tuple[str, ...]]):  # type: ignore[no-untyped-def]
    return compile_workflow(Workflow(workflow="w", steps={n: Step(task=f"t.{n}", needs=ns) for n, ns in needs.items()}))


def test_a_diamond_is_a_chain_ending_in_a_chord() -> None:
    app = Celery(set_as_current=False)
    sig = to_celery(_plan({"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}), app)
    # chain(a, group(b, c), d): Celery turns a group followed by a task into a chord when it is sent.
    assert isinstance(sig, _chain)
    first, middle, last = sig.tasks
    assert first.task == "t.a" and last.task == "t.d"
    assert isinstance(middle, group) and sorted(t.task for t in middle.tasks) == ["t.b", "t.c"]


def test_a_non_series_parallel_block_is_laid_out_by_level() -> None:
    sig = to_celery(_plan({"a": (), "b": (), "c": ("a",), "d": ("a", "b")}))
    assert isinstance(sig, _chain | _chord)
    layers = sig.tasks if isinstance(sig, _chain) else [*sig.tasks, sig.body]
    assert isinstance(layers[0], group) and sorted(t.task for t in layers[0].tasks) == ["t.a", "t.b"]


def test_nested_chords_grow_the_celery_canvas_but_not_our_messages() -> None:
    needs: dict[str, tuple[str, ...]] = {}
    previous: tuple[str, ...] = ()
    for i in range(30):
        needs[f"a{i}"] = previous
        needs[f"b{i}"] = needs[f"c{i}"] = (f"a{i}",)
        needs[f"d{i}"] = (f"b{i}", f"c{i}")
        previous = (f"d{i}",)
    plan = _plan(needs)
    assert report(plan).largest_message_bytes < 1024
    assert canvas_bytes(to_celery(plan)) > 10 * report(plan).largest_message_bytes
