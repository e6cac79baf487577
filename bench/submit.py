"""Submit cost: a 10,000-step run through the coordinator, and a 10-step run over the HTTP API.

Run from the repository root::

    python3 -m bench.submit                     # 10,000 steps, 3 rounds, 200 API submits per round
    python3 -m bench.submit --scale 0.1         # 1,000 steps, 20 API submits per round

**(a) The coordinator.** ``Coordinator.submit`` of one definition, in this process, for two shapes
of ``--steps`` no-op steps: ``chain`` (one root) and ``wide`` (every step a root, so its submit
publishes ``--steps`` messages). The coordinator is wired as ``orchestrator.services`` wires it:
the broker is the store's Redis, so the run's script pushes the roots' messages itself. Each round
submits each shape ``--submits`` times, after a first submit outside the figures (the plan is then
compiled and in the coordinator's plan cache, ``orchestrator/plan/cache.py``, and stored under its
content hash). The phases are timed by wrapping the coordinator's and the store's own methods on
these instances (no product code changes): ``compile`` (``Coordinator.compile``: a cache lookup
once compiled), ``deliveries`` (``Coordinator._roots``: the roots' step messages with their
queues and time limits, what the messages are built from), ``build`` (``Dispatcher.outbound``:
the roots' messages), ``create`` (``RunStore.runs.create``: the plan write, and one pipeline of
the run's script, which records the run and its roots, and the pushes of their messages), of
which ``plan write`` (``save_plan``: an ``EXISTS``; the plan is serialised and written only when
it is not stored yet).
Publishing alone starts from the same deliveries, so ``deliveries`` is all on top.

The process's heap: each shape is measured twice in the same run, first in this process as it is
(``live``), then on a second coordinator of its own as ``orchestrator api`` starts (``frozen``):
the workflows compiled first, as the API compiles those of its ``ORCH_WORKFLOWS_DIR``
(``Services.compile_registered``), then :func:`orchestrator.api.app.freeze_heap`, which takes
its modules, app, connections and those plans out of the cyclic collector's reach. ``full
collections`` is the time the collector spent in full (generation 2) collections during the
submits; a run of 10,000 roots keeps enough objects alive at once to start one about every
other submit. The targets are the ``frozen`` rows: the process that takes submits is the API.

"Publishing its roots" is measured beside each submit: the same roots' messages published alone,
as a coordinator whose broker is not the store publishes them (``Dispatcher.send``: build each
message, ``LPUSH`` them a pipeline per 1,000). "On top of publishing" is the whole submit less
that; target: under 100 ms. No worker runs: between two submits the benchmark empties the queue
and deletes the run, so every submit meets the same store.

**(b) The HTTP API.** ``python -m orchestrator api`` (uvicorn, one process, default settings and
INFO logs, as ``tests/api/conftest.py`` starts it) with a token of scope ``submit`` and a
10-step chain in its ``ORCH_WORKFLOWS_DIR``. Each round sends ``--requests`` ``POST
/v1/workflows/chain-10/runs`` one after the other on one keep-alive connection, and reads the
``Server-Timing: app;dur=<ms>`` header the API adds to every answer (the time from the request's
arrival at the app to its answer's start); the client's own round trip is reported next to it.
Side by side in the same rounds: the same number of ``GET /healthz`` (the app's floor: middleware
and routing) and of ``Coordinator.submit`` of the same workflow in this process (the work the
route does). Target: the server's median under 5 ms; p99 reported.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import re
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.processes import Processes
from bench.report import Target, console, median, percentile, targets_table, write
from bench.systems import Ours
from orchestrator.api.app import freeze_heap
from orchestrator.broker.dispatch import CeleryDispatcher
from orchestrator.definition.models import Workflow
from orchestrator.engine.coordinator import Coordinator

DURATION = re.compile(r"app;dur=([0-9.]+)")
API_WORKFLOW = "chain-10"
ON_TOP = "on top of publishing < 100 ms"
PHASES = ("total", "compile", "deliveries", "build", "create", "plan_write", "full_gc", "publish_alone")


def chain(steps: int) -> dict[str, Any]:
    return {
        "workflow": f"chain-{steps}",
        "steps": {f"s{i}": {"task": "bench.noop", "needs": [f"s{i - 1}"] if i else []} for i in range(steps)},
    }


def wide(steps: int) -> dict[str, Any]:
    return {"workflow": f"wide-{steps}", "steps": {f"s{i}": {"task": "bench.noop"} for i in range(steps)}}


class Phases:
    """Seconds spent in the wrapped methods of one submit, by phase, and in full collections (``full_gc``)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._collecting = 0.0
        gc.callbacks.append(self._collection)

    def _collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._collecting = time.perf_counter()
        elif info["generation"] == 2:
            self.spent["full_gc"] = self.spent.get("full_gc", 0.0) + time.perf_counter() - self._collecting

    def close(self) -> None:
        gc.callbacks.remove(self._collection)

    def wrap(self, owner: Any, method: str, phase: str) -> None:
        """Replace ``owner.method`` (on this instance only) by a timed call of the original."""
        original: Callable[..., Any] = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.spent[phase] = self.spent.get(phase, 0.0) + time.perf_counter() - began

        setattr(owner, method, timed)

    def take(self) -> dict[str, float]:
        spent, self.spent = self.spent, {}
        return spent


@dataclass
class Shape:
    """One shape's submits: per submit, seconds by phase."""

    name: str
    workflow: Workflow
    heap: str
    submits: list[dict[str, float]] = field(default_factory=list)

    def median(self, phase: str) -> float:
        return median([s.get(phase, 0.0) for s in self.submits])

    def on_top(self) -> list[float]:
        return [s["total"] - s["publish_alone"] for s in self.submits]

    def without_plan(self) -> list[float]:
        """On top of publishing, less compiling and writing the plan: what caching the plan would leave."""
        return [
            t - s.get("compile", 0.0) - s.get("plan_write", 0.0)
            for t, s in zip(self.on_top(), self.submits, strict=True)
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "heap": self.heap,
            "steps": len(self.workflow.steps),
            "submits": self.submits,
            **{f"{p}_median": self.median(p) for p in PHASES},
            "on_top_of_publish_median": median(self.on_top()),
            "on_top_of_publish_p99": percentile(self.on_top(), 99),
            "without_compile_and_plan_write_median": median(self.without_plan()),
        }


def submit_once(ours: Ours, phases: Phases, shape: Shape, publisher: CeleryDispatcher) -> dict[str, float]:
    """One submit by phase, and (``publish_alone``) the same roots' messages published by ``publisher``."""
    phases.take()  # nothing from before the submit (the last one's publish alone, its collections)
    began = time.perf_counter()
    run_id = ours.coordinator.submit(shape.workflow).run_id
    spent = {"total": time.perf_counter() - began, **phases.take()}
    ours.purge()
    ours.redis.delete(ours.store.keys.outbox())  # the roots' publish guards: nothing else uses it here
    ours.drop(run_id, shape.workflow.workflow)
    plan = ours.coordinator.plans.plan(shape.workflow)  # the cached plan, not the timed compile
    roots = Coordinator._roots(plan, run_id)  # the very deliveries the submit built
    began = time.perf_counter()
    publisher.send(roots)
    spent["publish_alone"] = time.perf_counter() - began
    ours.purge()
    return spent


@dataclass
class Latencies:
    """Milliseconds of one kind of request or call, all rounds together."""

    name: str
    server: list[float] = field(default_factory=list)
    client: list[float] = field(default_factory=list)

    def row(self) -> list[str]:
        def cell(values: list[float], p: float | None = None) -> str:
            value = median(values) if p is None else percentile(values, p)
            return "" if math.isnan(value) else f"{value:.2f}"

        return [
            self.name,
            str(max(len(self.server), len(self.client))),
            cell(self.server),
            cell(self.server, 99),
            cell(self.client),
            cell(self.client, 99),
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "count": max(len(self.server), len(self.client)),
            "server_ms_median": median(self.server),
            "server_ms_p99": percentile(self.server, 99),
            "client_ms_median": median(self.client),
            "client_ms_p99": percentile(self.client, 99),
        }


def server_ms(response: httpx.Response) -> float:
    """The ``Server-Timing`` app duration of an answer (ms).

    Raises:
        RuntimeError: the header is missing (the API does not time its answers).
    """
    match = DURATION.search(response.headers.get("server-timing", ""))
    if match is None:
        raise RuntimeError(f"no Server-Timing app;dur in the answer: {dict(response.headers)}")
    return float(match.group(1))


def timed_request(client: httpx.Client, method: str, url: str, into: Latencies, **options: Any) -> None:
    began = time.perf_counter()
    response = client.request(method, url, **options)
    elapsed = (time.perf_counter() - began) * 1000
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:500]}")
    into.server.append(server_ms(response))
    into.client.append(elapsed)


def api_round(client: httpx.Client, ours: Ours, workflow: Workflow, count: int, kinds: dict[str, Latencies]) -> None:
    """``count`` of each: API submits, ``/healthz``, in-process submits; interleaved in blocks of 10."""
    url = f"/v1/workflows/{API_WORKFLOW}/runs"
    for start in range(0, count, 10):
        block = min(10, count - start)
        for _ in range(block):
            timed_request(client, "POST", url, kinds["api"], json={"params": {}})
        for _ in range(block):
            timed_request(client, "GET", "/healthz", kinds["healthz"])
        for _ in range(block):
            began = time.perf_counter()
            ours.coordinator.submit(workflow)
            kinds["direct"].client.append((time.perf_counter() - began) * 1000)
        ours.purge()


def coordinator_table(shapes: list[Shape], args: argparse.Namespace) -> Table:
    table = Table(
        title=f"(a) Coordinator.submit of {args.steps:,} steps, {args.submits} submits x {args.rounds} rounds, "
        "median ms"
    )
    columns = (
        "heap",
        "total",
        "publish alone",
        "on top of publish",
        "p99",
        "compile",
        "deliveries",
        "build",
        "create",
        "of which plan write",
        "full collections",
    )
    for column in ("shape", "roots", *columns, "on top, less compile and plan write"):
        table.add_column(column, justify="left" if column == "shape" else "right")
    for s in shapes:
        on_top = s.on_top()
        table.add_row(
            s.name,
            f"{len(_roots(s.workflow)):,}",
            s.heap,
            _ms(s.median("total")),
            _ms(s.median("publish_alone")),
            _ms(median(on_top)),
            _ms(percentile(on_top, 99)),
            _ms(s.median("compile")),
            _ms(s.median("deliveries")),
            _ms(s.median("build")),
            _ms(s.median("create")),
            _ms(s.median("plan_write")),
            _ms(s.median("full_gc")),
            _ms(median(s.without_plan())),
        )
    return table


def _roots(workflow: Workflow) -> list[str]:
    return [name for name, step in workflow.steps.items() if not step.needs]


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def api_table(kinds: dict[str, Latencies], rounds: int) -> Table:
    table = Table(title=f"(b) a 10-step submit over HTTP vs in process, {rounds} rounds, ms")
    for column in ("request", "count", "server median", "server p99", "client median", "client p99"):
        table.add_column(column, justify="left" if column == "request" else "right")
    for latencies in kinds.values():
        table.add_row(*latencies.row())
    return table


def run_coordinator(ours: Ours, args: argparse.Namespace, steps: int, out: Console, heap: str) -> list[Shape]:
    shapes = [Shape("chain", ours.workflow(chain(steps)), heap), Shape("wide", ours.workflow(wide(steps)), heap)]
    if heap == "frozen":  # as `orchestrator api` starts: its directory's workflows compiled, then its heap frozen
        for shape in shapes:
            ours.coordinator.compile(shape.workflow)
        freeze_heap()
    phases = Phases()
    phases.wrap(ours.coordinator, "compile", "compile")
    phases.wrap(ours.coordinator, "_roots", "deliveries")
    phases.wrap(ours.store.runs, "create", "create")
    phases.wrap(ours.store.runs, "save_plan", "plan_write")
    phases.wrap(ours.coordinator.dispatcher, "outbound", "build")
    publisher = CeleryDispatcher(ours.app)  # a broker that is not the store: the dispatcher publishes
    for shape in shapes:  # the plan's first write, and whatever else a first call warms
        submit_once(ours, phases, shape, publisher)
    for n in range(args.rounds):
        for shape in shapes:
            with out.status(f"round {n + 1}/{args.rounds}: {shape.name} x {args.submits}, heap {heap}"):
                for _ in range(args.submits):
                    shape.submits.append(submit_once(ours, phases, shape, publisher))
    phases.close()
    return shapes


def run_api(processes: Processes, ours: Ours, args: argparse.Namespace, out: Console) -> dict[str, Latencies]:
    directory = processes.tmp / "workflows"
    directory.mkdir()
    (directory / f"{API_WORKFLOW}.json").write_text(json.dumps(chain(10)))
    token = secrets.token_urlsafe(16)
    server = processes.api(
        "api",
        {
            "ORCH_BROKER_URL": ours.url,
            "ORCH_STORE_URL": ours.url,
            "ORCH_KEY_PREFIX": "bench-api",
            "ORCH_TASK_MODULES": "bench.tasks",
            "ORCH_WORKFLOWS_DIR": str(directory),
            "ORCH_API_TOKENS": f"bench:{token}:submit",
        },
    )
    kinds = {
        "api": Latencies("POST /v1/workflows/chain-10/runs (API)"),
        "healthz": Latencies("GET /healthz (API)"),
        "direct": Latencies("Coordinator.submit, in this process (client column)"),
    }
    workflow = ours.workflow(chain(10))
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        warm = {name: Latencies(name) for name in kinds}
        api_round(client, ours, workflow, 20, warm)
        for n in range(args.rounds):
            with out.status(f"round {n + 1}/{args.rounds}: {args.requests} API submits"):
                api_round(client, ours, workflow, args.requests, kinds)
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--submits", type=int, default=5, help="coordinator submits per shape and round")
    parser.add_argument("--requests", type=int, default=200, help="API submits per round")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --steps and --requests (quick: 0.1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the API's log")
    args = parser.parse_args(argv)
    steps = max(10, round(args.steps * args.scale))
    args.requests = max(10, round(args.requests * args.scale))
    args.steps = steps
    out = console()
    with Processes(keep=args.keep) as processes:
        live = Ours(processes)
        shapes = run_coordinator(live, args, steps, out, "live")
        frozen = Ours(processes, prefix="bench-frozen")
        shapes += run_coordinator(frozen, args, steps, out, "frozen")
        kinds = run_api(processes, frozen, args, out)
        live.close()
        frozen.close()

    out.print(coordinator_table(shapes, args))
    out.print(api_table(kinds, args.rounds))
    chain_top, wide_top = (median(s.on_top()) for s in shapes if s.heap == "frozen")
    api_median = median(kinds["api"].server)
    targets = [
        Target(f"submit {steps:,}-step chain (heap frozen)", ON_TOP, chain_top * 1000, chain_top < 0.1),
        Target(f"submit {steps:,}-step wide (heap frozen)", ON_TOP, wide_top * 1000, wide_top < 0.1),
        Target("API submit of 10 steps", "server time median < 5 ms", api_median, api_median < 5),
    ]
    out.print(targets_table(targets))
    path = write(
        "submit",
        argv if argv is not None else sys.argv[1:],
        {
            "steps": steps,
            "submits_per_round": args.submits,
            "requests_per_round": args.requests,
            "rounds": args.rounds,
            "coordinator": [s.summary() for s in shapes],
            "api": [k.summary() for k in kinds.values()],
            "ratios": {
                "api server / in-process submit (median)": api_median / median(kinds["direct"].client),
                "api client / api server (median)": median(kinds["api"].client) / api_median,
            },
        },
        targets,
    )
    out.print(f"written to {path}")
    return 0 if all(t.met for t in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
