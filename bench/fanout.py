"""Fan-out: ``for_each`` over 10,000 items vs ``celery.group`` / ``celery.chord`` of the same tasks.

Run from the repository root::

    python3 -m bench.fanout                  # 10,000 items, 3 rounds
    python3 -m bench.fanout --scale 0.1      # 1,000 items

Two figures per system, both from the moment dispatch starts:

- **dispatch**: until every item's message is on the broker. Ours: ``Coordinator.fan_out`` (record
  the items, publish one message per item, drop the step's lease), the code a worker runs for a
  ``for_each`` step, run here in the benchmark process so that it can be timed; plain Celery:
  ``group(...).apply_async()`` and ``chord(...).apply_async()``, in the same process;
- **fan-in**: until the step that needs all the items starts. Ours: ``started_at`` of the step
  that ``needs`` the ``for_each`` step (run record); ``chord``: when its callback started
  (``task_prerun``); ``group``: when ``GroupResult.join_native()`` returned every result to
  the caller (there is no callback).

The workflow is ``each`` (``for_each: ${params.items}``, a no-op per item) then ``after``
(``needs: [each]``). One worker node per system, prefork pool of ``--concurrency`` processes,
consuming while the dispatch runs; plain Celery's header tasks store their (None) results, which
chords and ``join`` need. Target: our dispatch is faster than ``celery.group``'s.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from celery import chord, group
from rich.table import Table

from bench.processes import Processes
from bench.report import Target, console, median, ratio, targets_table, write
from bench.systems import Ours, Plain, add_common_arguments, start, timestamp
from orchestrator.definition.params import resolve_params
from orchestrator.engine.context import StepReads
from orchestrator.engine.ports import NewRun
from orchestrator.engine.records import Trigger
from orchestrator.engine.unit import StepMessage, Unit

TIMEOUT = 900.0


@dataclass
class Sample:
    dispatch: float
    fan_in: float


@dataclass
class Series:
    name: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def dispatch(self) -> float:
        return median([s.dispatch for s in self.samples])

    @property
    def fan_in(self) -> float:
        return median([s.fan_in for s in self.samples])


WORKFLOW: dict[str, Any] = {
    "workflow": "fanout",
    "params": {"items": {"type": "array", "default": []}},
    "steps": {
        "each": {"task": "bench.noop", "for_each": "${params.items}", "args": {"item": "${item}"}},
        "after": {"task": "bench.noop", "needs": ["each"]},
    },
}


def run_ours(ours: Ours, count: int) -> Sample:
    """Record a run whose ``each`` step this process claims and fans out, as a worker would."""
    coordinator, store = ours.coordinator, ours.store
    workflow = ours.workflow(WORKFLOW)
    items = list(range(count))
    plan = coordinator.compile(workflow)
    run_id = uuid.uuid4().hex
    params = resolve_params(workflow.params, {"items": items})
    store.runs.create(NewRun(run_id, plan, params, Trigger.CLI, coordinator.lease_seconds))
    store.runs.redis.zrem(store.keys.outbox(), str(Unit(run_id, "each")))  # its "message" is this process
    task_id = f"bench-fanout-{run_id}"
    message = StepMessage(run_id=run_id, plan_id=plan.plan_id, step="each")
    claim, _ = store.steps.claim_and_read(message, task_id, "fanout@bench", coordinator.lease_seconds, StepReads())
    if not claim.ok:
        raise RuntimeError(f"could not claim the for_each step: {claim}")
    started = time.time()
    coordinator.fan_out(plan, message, task_id, items)
    dispatched = time.time()
    record = ours.wait(run_id, TIMEOUT)
    if record.status.value != "succeeded":
        raise RuntimeError(f"run {run_id} {record.status.value}")
    return Sample(dispatched - started, timestamp(record.steps["after"].started_at) - started)


def run_group(plain: Plain, count: int) -> Sample:
    result = plain.task("plain.result")
    signatures = group(result.si() for _ in range(count))
    started = time.time()
    outcome = signatures.apply_async()
    dispatched = time.time()
    outcome.join_native(timeout=TIMEOUT)
    joined = time.time()
    outcome.forget()
    return Sample(dispatched - started, joined - started)


def run_chord(plain: Plain, count: int) -> Sample:
    result, timed = plain.task("plain.result"), plain.task("plain.timed")
    key = f"fan:{uuid.uuid4().hex}"
    canvas = chord((result.si() for _ in range(count)), timed.si(key=key, i=0))
    started = time.time()
    canvas.apply_async()
    dispatched = time.time()
    begun = plain.wait_times(key, "start", 1, TIMEOUT)[0]
    return Sample(dispatched - started, begun - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --items (quick runs: 0.1)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    count = max(1, round(args.items * args.scale))
    out = console()

    ours_series, group_series, chord_series = Series("ours (for_each)"), Series("celery.group"), Series("celery.chord")
    with Processes(keep=args.keep) as processes:
        ours, plain = start(processes, args.concurrency)
        with out.status("warming up..."):
            run_ours(ours, 50)
            run_group(plain, 50)
            run_chord(plain, 50)
        for n in range(args.rounds):
            runs: list[tuple[Series, Callable[[], Sample]]] = [
                (ours_series, lambda: run_ours(ours, count)),
                (group_series, lambda: run_group(plain, count)),
                (chord_series, lambda: run_chord(plain, count)),
            ]
            for series, run in runs:
                with out.status(f"round {n + 1}/{args.rounds}: {series.name}"):
                    series.samples.append(run())
        ours.close()
        plain.close()

    table = Table(
        title=f"fan-out of {count:,} no-op items, 1 node x {args.concurrency} prefork, median of {args.rounds} rounds"
    )
    for column in ("system", "dispatch s (each round)", "dispatch s", "fan-in s", "ours / this: dispatch", "fan-in"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for series in (ours_series, group_series, chord_series):
        table.add_row(
            series.name,
            " ".join(f"{s.dispatch:.2f}" for s in series.samples),
            f"{series.dispatch:.2f}",
            f"{series.fan_in:.2f}",
            ratio(ours_series.dispatch / series.dispatch),
            ratio(ours_series.fan_in / series.fan_in),
        )
    value = ours_series.dispatch / group_series.dispatch
    targets = [Target("fan-out dispatch", "ours / celery.group < 1 (time)", value, value < 1)]
    out.print(table)
    out.print(targets_table(targets))
    path = write(
        "fanout",
        argv if argv is not None else sys.argv[1:],
        {
            "items": count,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "series": [
                {"name": s.name, "samples": [asdict(x) for x in s.samples], "dispatch": s.dispatch, "fan_in": s.fan_in}
                for s in (ours_series, group_series, chord_series)
            ],
            "ratios": {
                "dispatch ours/group": value,
                "dispatch ours/chord": ours_series.dispatch / chord_series.dispatch,
                "fan_in ours/group": ours_series.fan_in / group_series.fan_in,
                "fan_in ours/chord": ours_series.fan_in / chord_series.fan_in,
            },
        },
        targets,
    )
    out.print(f"written to {path}")
    return 0 if all(t.met for t in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
