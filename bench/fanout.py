"""Fan-out: ``for_each`` over N items vs ``celery.group`` / ``celery.chord`` of the same tasks.

Run from the repository root::

    python3 -m bench.fanout                            # 10,000 items, 3 rounds
    python3 -m bench.fanout --scale 0.1                # 1,000 items
    python3 -m bench.fanout --items 100000 --timeout 1500   # results/fanout-100000.json

Two figures per system, both from the moment dispatch starts:

- **dispatch**: until every item's message is on the broker. Ours: ``Coordinator.fan_out`` (record
  the items, publish one message per item, drop the step's lease), the code a worker runs for a
  ``for_each`` step, run here in the benchmark process so that it can be timed; plain Celery:
  ``group(...).apply_async()`` and ``chord(...).apply_async()``, in the same process;
- **fan-in**: until the step that needs all the items starts. Ours: ``started_at`` of the step
  that ``needs`` the ``for_each`` step (run record); ``chord``: when its callback started
  (``task_prerun``); ``group``: when ``GroupResult.join_native()`` returned every result to
  the caller (there is no callback). A system that has not fanned in ``--timeout`` seconds after
  its dispatch started is reported as "did not finish in N s" (its messages still queued are
  purged, and ours's run cancelled, before the next system runs).

While each one runs, a thread (:mod:`bench.progress`) polls how many items have ended (ours: the
step's ``items_done``; plain Celery: the results in its backend database, ``DBSIZE``) and, at
every ``--every`` items (default a tenth of them: 10,000 of 100,000), records the time, Redis
``used_memory`` and the worker node's memory (RSS and PSS of its main and pool processes, from
``/proc``), and prints them. The time between two marks is what those items took: if a per-item
cost grew with the items already done (a quadratic step), the later gaps would be longer than
the early ones; "late / early" is the mean of the last three gaps over the mean of gaps 2-4 (the
first overlaps the dispatch). Each round ends by deleting what it left (our run's keys, plain
Celery's results), so every round starts from the same memory.

The workflow is ``each`` (``for_each: ${params.items}``, a no-op per item) then ``after``
(``needs: [each]``). One worker node per system, prefork pool of ``--concurrency`` processes,
consuming while the dispatch runs; plain Celery's header tasks store their (None) results, which
chords and ``join`` need. Target: our dispatch is faster than ``celery.group``'s.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from celery import chord, group
from celery.exceptions import TimeoutError as CeleryTimeout
from redis import Redis
from rich.console import Console
from rich.table import Table

from bench.processes import Processes, Worker
from bench.progress import MB, Mark, Progress, gaps
from bench.report import Target, console, median, ratio, targets_table, write
from bench.systems import PLAIN_BACKEND_DB, Ours, Plain, add_common_arguments, start, timestamp
from orchestrator.definition.params import resolve_params
from orchestrator.engine.context import StepReads
from orchestrator.engine.ports import NewRun
from orchestrator.engine.records import Trigger
from orchestrator.engine.unit import StepMessage, Unit

TIMEOUT = 900.0
DEFAULT_ITEMS = 10_000


@dataclass
class Sample:
    dispatch: float
    fan_in: float
    """NaN when it did not finish within the timeout."""
    finished: bool = True
    all_done: float | None = None
    """When the sampler saw the last item end (s from the start; None: it did not)."""
    peak_used_memory: int = 0
    marks: list[Mark] = field(default_factory=list)

    @property
    def join(self) -> float:
        """From the last item's end (as sampled, to within the poll) to the fan-in."""
        return self.fan_in - self.all_done if self.finished and self.all_done is not None else math.nan

    @property
    def growth(self) -> float:
        """Mean of the last three gaps over the mean of gaps 2-4: 1 when the per-item cost stays flat."""
        found = gaps(self.marks)
        if len(found) < 6:
            return math.nan
        return (sum(found[-3:]) / 3) / (sum(found[1:4]) / 3)


@dataclass
class Series:
    name: str
    short: str
    worker: Worker | None = None
    samples: list[Sample] = field(default_factory=list)

    @property
    def dispatch(self) -> float:
        return median([s.dispatch for s in self.samples])

    @property
    def fan_in(self) -> float:
        """Median over the rounds that finished (NaN if none did)."""
        return median([s.fan_in for s in self.samples if s.finished])

    @property
    def finished(self) -> int:
        return sum(s.finished for s in self.samples)

    def mark(self, index: int, figure: str) -> float:
        """Median over the rounds of mark ``index``'s ``figure`` (rounds that did not reach it left out)."""
        return median([float(getattr(s.marks[index], figure)) for s in self.samples if len(s.marks) > index])

    def gap(self, index: int) -> float:
        return median([gaps(s.marks)[index - 1] for s in self.samples if len(s.marks) > index])


WORKFLOW: dict[str, Any] = {
    "workflow": "fanout",
    "params": {"items": {"type": "array", "default": []}},
    "steps": {
        "each": {"task": "bench.noop", "for_each": "${params.items}", "args": {"item": "${item}"}},
        "after": {"task": "bench.noop", "needs": ["each"]},
    },
}


@dataclass
class Sampling:
    """How a round samples its progress (see :class:`bench.progress.Progress`)."""

    redis: Redis
    every: int
    out: Console | None
    label: str | None = None

    def progress(self, count: Callable[[], int], total: int, worker: Worker) -> Progress:
        return Progress(self.redis, count, total, self.every, worker, self.label, self.out)


def run_ours(ours: Ours, worker: Worker, count: int, timeout: float, sampling: Sampling) -> Sample:
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
    step_key = store.keys.step(run_id, "each")
    poller = sampling.redis
    progress = sampling.progress(lambda: int(poller.hget(step_key, "items_done") or 0), count, worker)
    started = time.time()
    progress.start(started)
    coordinator.fan_out(plan, message, task_id, items)
    dispatched = time.time()
    try:
        record = ours.wait(run_id, max(timeout - (time.time() - started), 1))
    except TimeoutError:
        progress.stop()
        coordinator.cancel(run_id, "bench")
        ours.purge()
        sample = Sample(dispatched - started, math.nan, False, None, progress.peak_used_memory)
    else:
        progress.stop()
        if record.status.value != "succeeded":
            raise RuntimeError(f"run {run_id} {record.status.value}") from None
        fan_in = timestamp(record.steps["after"].started_at) - started
        sample = Sample(dispatched - started, fan_in, True, progress.reached(count), progress.peak_used_memory)
    sample.marks = progress.marks
    time.sleep(0.5)  # the items' acks
    ours.drop(run_id, workflow.workflow)
    return sample


def results(plain: Plain) -> Redis:
    """The plain system's result backend database (its results are what ``join`` and chords count)."""
    return plain.processes.redis.client(PLAIN_BACKEND_DB)


def settle(plain: Plain, backend: Redis) -> None:
    """After a timeout: drop the queued tasks, and wait until the worker has ended those it held."""
    plain.purge()
    last, quiet = -1, 0
    while quiet < 10:
        size = int(backend.dbsize())
        quiet = quiet + 1 if size == last else 0
        last = size
        time.sleep(0.2)


def run_group(plain: Plain, worker: Worker, count: int, timeout: float, sampling: Sampling) -> Sample:
    backend = results(plain)
    backend.flushdb()
    result = plain.task("plain.result")
    signatures = group(result.si() for _ in range(count))
    progress = sampling.progress(lambda: int(backend.dbsize()), count, worker)
    started = time.time()
    progress.start(started)
    outcome = signatures.apply_async()
    dispatched = time.time()
    try:
        outcome.join_native(timeout=max(timeout - (time.time() - started), 1))
    except (CeleryTimeout, TimeoutError):
        progress.stop()
        settle(plain, backend)
        sample = Sample(dispatched - started, math.nan, False, None, progress.peak_used_memory)
    else:
        joined = time.time()
        progress.stop()
        done = progress.reached(int(backend.dbsize()))  # every result is in: the count's final value
        sample = Sample(dispatched - started, joined - started, True, done, progress.peak_used_memory)
    sample.marks = progress.marks
    backend.flushdb()  # faster than outcome.forget(), one DEL per result
    return sample


def run_chord(plain: Plain, worker: Worker, count: int, timeout: float, sampling: Sampling) -> Sample:
    backend = results(plain)
    backend.flushdb()
    result, timed = plain.task("plain.result"), plain.task("plain.timed")
    key = f"fan:{uuid.uuid4().hex}"
    canvas = chord((result.si() for _ in range(count)), timed.si(key=key, i=0))
    progress = sampling.progress(lambda: int(backend.dbsize()), count, worker)
    started = time.time()
    progress.start(started)
    canvas.apply_async()
    dispatched = time.time()
    try:
        begun = plain.wait_times(key, "start", 1, max(timeout - (time.time() - started), 1))[0]
    except TimeoutError:
        progress.stop()
        settle(plain, backend)
        sample = Sample(dispatched - started, math.nan, False, None, progress.peak_used_memory)
    else:
        progress.stop()
        # Every header result is in, and the chord's own few keys: the count's final value.
        done = progress.reached(int(backend.dbsize()))
        sample = Sample(dispatched - started, begun - started, True, done, progress.peak_used_memory)
    sample.marks = progress.marks
    backend.flushdb()
    plain.redis.delete(*(f"{key}:{kind}" for kind in ("start", "end", "postrun", "host")))
    return sample


def seconds(value: float, timeout: float) -> str:
    return f"did not finish in {timeout:g} s" if math.isnan(value) else f"{value:.2f}"


def main_table(series: list[Series], count: int, args: argparse.Namespace) -> Table:
    ours = series[0]
    table = Table(
        title=f"fan-out of {count:,} no-op items, 1 node x {args.concurrency} prefork, median of {args.rounds} rounds"
    )
    columns = ("system", "dispatch s (each round)", "dispatch s", "fan-in s (each round)", "fan-in s", "join s")
    for column in (*columns, "ours / this: dispatch", "fan-in"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for s in series:
        table.add_row(
            s.name,
            " ".join(f"{x.dispatch:.2f}" for x in s.samples),
            f"{s.dispatch:.2f}",
            " ".join(seconds(x.fan_in, args.timeout) for x in s.samples),
            seconds(s.fan_in, args.timeout),
            f"{median([x.join for x in s.samples if x.finished]):.2f}",
            ratio(ours.dispatch / s.dispatch),
            ratio(ours.fan_in / s.fan_in),
        )
    return table


def progress_table(series: list[Series], count: int, every: int) -> Table:
    """Per mark: when it was reached, the gap since the previous one, and the memory then."""
    table = Table(title=f"every {every:,} items done (median over rounds): s since the start (+ gap), memory in MB")
    table.add_column("items done", justify="right")
    for s in series:
        for column in ("s (+gap)", "Redis used", "worker PSS"):
            table.add_column(f"{s.short}: {column}", justify="right")
    for index in range(count // every + 1):
        row = [f"{index * every:,}"]
        for s in series:
            at = s.mark(index, "seconds")
            gap = "" if index == 0 or math.isnan(at) else f" (+{s.gap(index):.1f})"
            row += [
                "n/a" if math.isnan(at) else f"{at:.1f}{gap}",
                _mb(s.mark(index, "used_memory")),
                _mb(s.mark(index, "worker_pss")),
            ]
        table.add_row(*row)
    return table


def memory_table(series: list[Series], count: int) -> Table:
    """Memory at the start and once every item ended, Redis's peak, and the late/early gap ratio."""
    table = Table(title="memory (MB, median over rounds) and whether the per-item time grew")
    columns = ("Redis used: start", "all done", "peak", "held per 1,000 items (KB)", "peak per 1,000 (KB)")
    for column in ("system", *columns, "worker RSS", "worker PSS", "driver RSS", "late / early gaps"):
        table.add_column(column, justify="left" if column == "system" else "right")
    last = count // series[0].samples[0].marks[1].done if series[0].samples[0].marks[1:] else 0
    for s in series:
        start, peak = s.mark(0, "used_memory"), median([float(x.peak_used_memory) for x in s.samples])
        end = s.mark(last, "used_memory")
        table.add_row(
            s.name,
            _mb(start),
            _mb(end),
            _mb(peak),
            f"{(end - start) / 1024 / (count / 1000):.1f}",
            f"{(peak - start) / 1024 / (count / 1000):.1f}",
            _mb(s.mark(last, "worker_rss")),
            _mb(s.mark(last, "worker_pss")),
            _mb(s.mark(last, "driver_rss")),
            ratio(median([x.growth for x in s.samples])),
        )
    return table


def _mb(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value / MB:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --items (quick runs: 0.1)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds a system has to fan in")
    parser.add_argument("--every", type=int, default=0, help="items between two memory marks (default: a tenth)")
    parser.add_argument("--quiet", action="store_true", help="do not print a line at each mark")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    count = max(1, round(args.items * args.scale))
    every = args.every or max(1, count // 10)
    out = console()

    series = [Series("ours (for_each)", "ours"), Series("celery.group", "group"), Series("celery.chord", "chord")]
    with Processes(keep=args.keep) as processes:
        ours, plain = start(processes, args.concurrency)
        series[0].worker, series[1].worker = processes.workers
        series[2].worker = series[1].worker
        poller = processes.redis.client(0)
        runners: list[Callable[[Worker, int, float, Sampling], Sample]] = [
            lambda w, n, t, s: run_ours(ours, w, n, t, s),
            lambda w, n, t, s: run_group(plain, w, n, t, s),
            lambda w, n, t, s: run_chord(plain, w, n, t, s),
        ]
        with out.status("warming up..."):
            for s, run in zip(series, runners, strict=True):
                assert s.worker is not None
                run(s.worker, 50, args.timeout, Sampling(poller, 50, None))
        for n in range(args.rounds):
            for s, run in zip(series, runners, strict=True):
                assert s.worker is not None
                label = None if args.quiet else f"round {n + 1} {s.name}"
                with out.status(f"round {n + 1}/{args.rounds}: {s.name}"):
                    s.samples.append(run(s.worker, count, args.timeout, Sampling(poller, every, out, label)))
        ours.close()
        plain.close()

    out.print(main_table(series, count, args))
    out.print(progress_table(series, count, every))
    out.print(memory_table(series, count))
    ours_s, group_s, chord_s = series
    value = ours_s.dispatch / group_s.dispatch
    targets = [Target("fan-out dispatch", "ours / celery.group < 1 (time)", value, value < 1)]
    out.print(targets_table(targets))
    path = write(
        "fanout" if args.items == DEFAULT_ITEMS else f"fanout-{args.items}",
        argv if argv is not None else sys.argv[1:],
        {
            "items": count,
            "every": every,
            "timeout": args.timeout,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "series": [
                {
                    "name": s.name,
                    "samples": [
                        {**asdict(x), "join": x.join, "growth": x.growth, "gaps": gaps(x.marks)} for x in s.samples
                    ],
                    "dispatch": s.dispatch,
                    "fan_in": s.fan_in,
                    "finished_rounds": s.finished,
                    "growth": median([x.growth for x in s.samples]),
                }
                for s in series
            ],
            "ratios": {
                "dispatch ours/group": value,
                "dispatch ours/chord": ours_s.dispatch / chord_s.dispatch,
                "fan_in ours/group": ours_s.fan_in / group_s.fan_in,
                "fan_in ours/chord": ours_s.fan_in / chord_s.fan_in,
            },
        },
        targets,
    )
    out.print(f"written to {path}")
    return 0 if all(t.met for t in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
