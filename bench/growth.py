"""Cost per run as the store grows: submit and list with 0, 10,000 and 50,000 runs; the sweep, live vs expired leases.

Run from the repository root::

    python3 -m bench.growth                 # 0 / 10,000 / 50,000 runs; 10,000 live leases, 1,000 expired
    python3 -m bench.growth --scale 0.1     # 0 / 1,000 / 5,000; 1,000 live, 100 expired

**Runs in the store.** At each level the store (key prefix ``growth``) holds that many earlier runs
of a 10-step chain, recorded with ``RunStore.runs.create`` (what a submit writes: the run's hash,
its root step, its history, the indexes) and then marked ``succeeded``, plus 20 recent runs so
that a page is full even at 0. Each round then times, one after the other, ``--ops`` of each:

- ``Coordinator.submit`` of the chain in this process (the record and its root's publish);
- ``RunStore.runs.page`` of 20 runs, newest first: what ``orchestrator runs`` and ``GET /v1/runs`` call;
- the same with ``status=failed``, which no run matches: a page that has to look at the most runs;
- over HTTP, ``python -m orchestrator api`` on the same store: ``POST /v1/workflows/chain-10/runs``
  and ``GET /v1/runs?limit=20``, server time from the ``Server-Timing`` header.

The runs those submits create are deleted after each round, so a level keeps its size. No worker
runs (the published messages are dropped after each block).

**Leases.** On another key prefix (``sweep``) with a coordinator whose lease is an hour, the
sweeper's work, ``Coordinator.recover()`` (what ``workers/sweeper.py`` calls every
``sweep_interval`` once it holds the sweep lock; ``recover`` handles at most 500 units a pass), is
timed with 0 or ``--live`` live leases (runs of a 1-step workflow whose step is claimed, the lease
an hour away) and 0 or ``--expired`` expired ones (claimed, then their lease released as a dead
worker's expires). With expired leases a round times every pass until one finds nothing left;
the units it recovered (requeued and published again) are then deleted.

For every operation, ``INFO commandstats`` before and after gives the Redis commands it cost,
per operation: the commands clients sent and those scripts called (``EVALSHA`` and the calls
inside it both count), less the benchmark's own ``INFO``. Medians over ``--rounds`` rounds of the
per-round medians; p99 over all operations. The figure to read is the ratio to level 0: a cost
that grows with the store means a scan somewhere. No target.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from redis import Redis
from rich.console import Console
from rich.table import Table

from bench.commands import commandstats
from bench.processes import ROOT, Processes
from bench.report import console, median, percentile, ratio, write
from bench.submit import DURATION, chain
from bench.systems import Ours
from orchestrator.definition.models import Workflow
from orchestrator.engine.context import StepReads
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.ports import NewRun, RunQuery
from orchestrator.engine.records import RunStatus, Trigger
from orchestrator.engine.unit import StepMessage, Unit
from orchestrator.plan.compiler import Plan
from orchestrator.store import RedisRunStore
from orchestrator.store.keys import Keys

RECENT = 20
SWEEP_LEASE = 3600.0
OPERATIONS = (
    "submit",
    "page",
    "page status=failed",
    "API submit",
    "API page",
    "CLI runs",
    "CLI runs --status failed",
)


class Meter:
    """Redis commands between :meth:`begin` and :meth:`end`, from ``INFO commandstats`` (server-wide)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.before: Counter[str] = Counter()

    def begin(self) -> None:
        self.before = commandstats(self.redis)

    def end(self, operations: int) -> dict[str, float]:
        delta = commandstats(self.redis) - self.before
        delta.pop("INFO", None)
        return {name: calls / max(operations, 1) for name, calls in sorted(delta.items())}


@dataclass
class Figure:
    """One operation at one level: milliseconds per call, per round, and commands per call."""

    rounds: list[list[float]] = field(default_factory=list)
    commands: list[dict[str, float]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median([median(r) for r in self.rounds])

    @property
    def p99(self) -> float:
        return percentile([x for r in self.rounds for x in r], 99)

    def command(self, name: str | None = None) -> float:
        """Median over rounds of the commands per call (all of them, or one by name)."""
        return median([sum(c.values()) if name is None else c.get(name, 0.0) for c in self.commands])

    def summary(self) -> dict[str, Any]:
        names = sorted({n for c in self.commands for n in c})
        return {
            "ms_median": self.median,
            "ms_p99": self.p99,
            "ms_rounds": self.rounds,
            "commands_per_call": self.command(),
            "commands_by_name": {n: self.command(n) for n in names},
        }


def measure(meter: Meter | None, figure: Figure, count: int, call: Callable[[], float | None]) -> None:
    """``count`` calls of ``call`` (which returns its own ms, or None to be timed here) into ``figure``."""
    times: list[float] = []
    if meter is not None:
        meter.begin()
    for _ in range(count):
        began = time.perf_counter()
        own = call()
        times.append(own if own is not None else (time.perf_counter() - began) * 1000)
    if meter is not None:
        figure.commands.append(meter.end(count))
    figure.rounds.append(times)


def forget(redis: Redis, keys: Keys, plan: Plan, run_ids: Iterable[str]) -> None:
    """Delete runs of ``plan`` by their keys (no scan) and their index entries."""
    pipe = redis.pipeline(transaction=False)
    ids = list(run_ids)
    for run_id in ids:
        names = [keys.run(run_id), keys.history(run_id)]
        for step in plan.steps:
            names += [keys.step(run_id, step), keys.output(run_id, step), keys.join(run_id, step)]
        pipe.unlink(*names)
        pipe.zrem(keys.outbox(), *(str(Unit(run_id, s)) for s in plan.steps))
        pipe.zrem(keys.leases(), *(str(Unit(run_id, s)) for s in plan.steps))
        if len(pipe) > 3000:
            pipe.execute()
    if ids:
        pipe.zrem(keys.runs(), *ids)
        pipe.zrem(keys.runs_of(plan.workflow), *ids)
    pipe.execute()


def record_runs(store: RedisRunStore, coordinator: Coordinator, plan: Plan, count: int) -> list[str]:
    """``count`` runs as a submit records them (nothing published; their outbox guards removed)."""
    ids = []
    for _ in range(count):
        run_id = uuid.uuid4().hex
        store.runs.create(NewRun(run_id, plan, {}, Trigger.CLI, coordinator.lease_seconds))
        ids.append(run_id)
    if ids:
        store.runs.redis.zrem(store.keys.outbox(), *(str(Unit(r, s)) for r in ids for s in plan.roots))
    return ids


def finish(redis: Redis, keys: Keys, run_ids: Iterable[str]) -> None:
    """Mark runs succeeded (as the runs a store holds mostly are)."""
    pipe = redis.pipeline(transaction=False)
    for run_id in run_ids:
        pipe.hset(keys.run(run_id), mapping={"status": RunStatus.SUCCEEDED.value, "remaining": 0})
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()


@dataclass
class Cli:
    """``python -m orchestrator runs`` in a subprocess (interpreter start-up included)."""

    env: dict[str, str]

    def call(self, *options: str) -> Callable[[], None]:
        def run() -> None:
            command = [sys.executable, "-m", "orchestrator", "runs", "--limit", str(RECENT), "--json", *options]
            done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)}: {done.returncode}\n{done.stderr[-2000:]}")

        return run


@dataclass
class Api:
    client: httpx.Client
    workflow: str

    def submit(self, created: list[str]) -> float:
        response = self.client.post(f"/v1/workflows/{self.workflow}/runs", json={"params": {}})
        response.raise_for_status()
        created.append(response.json()["run_id"])
        return server_ms(response)

    def page(self) -> float:
        response = self.client.get("/v1/runs", params={"limit": RECENT})
        response.raise_for_status()
        if len(response.json()["runs"]) != RECENT:
            raise RuntimeError(f"a page of {len(response.json()['runs'])} runs, not {RECENT}")
        return server_ms(response)


def server_ms(response: httpx.Response) -> float:
    match = DURATION.search(response.headers.get("server-timing", ""))
    if match is None:
        raise RuntimeError("no Server-Timing header in the API's answer")
    return float(match.group(1))


def level_round(
    ours: Ours, api: Api, cli: Cli, plan: Plan, workflow: Workflow, ops: tuple[int, int], figures: dict[str, Figure]
) -> None:
    """One round at the current level: each operation ``ops[0]`` times (the CLI ``ops[1]``); the runs
    it made are deleted."""
    calls, cli_calls = ops
    meter = Meter(ours.redis)
    store, keys = ours.store, ours.store.keys
    created: list[str] = []

    def submit() -> None:
        created.append(ours.coordinator.submit(workflow).run_id)

    def page(query: RunQuery) -> Callable[[], None]:
        def call() -> None:
            found = store.runs.page(query)
            if query.status is None and len(found.runs) != RECENT:
                raise RuntimeError(f"a page of {len(found.runs)} runs, not {RECENT}")

        return call

    measure(meter, figures["submit"], calls, submit)
    ours.purge()
    forget(ours.redis, keys, plan, created)
    created.clear()
    measure(meter, figures["page"], calls, page(RunQuery(limit=RECENT)))
    measure(meter, figures["page status=failed"], calls, page(RunQuery(status=RunStatus.FAILED, limit=RECENT)))
    measure(None, figures["API submit"], calls, lambda: api.submit(created))
    measure(None, figures["API page"], calls, api.page)
    measure(meter, figures["CLI runs"], cli_calls, cli.call())
    measure(meter, figures["CLI runs --status failed"], cli_calls, cli.call("--status", "failed"))
    ours.redis.delete(*keys.queue_lists(ours.settings.defaults.queue))
    forget(ours.redis, keys, plan, created)


def run_levels(processes: Processes, args: argparse.Namespace, out: Console) -> tuple[list[int], dict[int, Any]]:
    ours = Ours(processes, prefix="growth")
    workflow = ours.workflow(chain(10))
    plan = ours.coordinator.compile(workflow)
    directory = processes.tmp / "workflows"
    directory.mkdir()
    (directory / f"{workflow.workflow}.json").write_text(json.dumps(chain(10)))
    token = secrets.token_urlsafe(16)
    env = {
        "ORCH_BROKER_URL": ours.url,
        "ORCH_STORE_URL": ours.url,
        "ORCH_KEY_PREFIX": "growth",
        "ORCH_TASK_MODULES": "bench.tasks",
        "ORCH_WORKFLOWS_DIR": str(directory),
    }
    server = processes.api("api", {**env, "ORCH_API_TOKENS": f"bench:{token}:submit"})  # submit includes read
    cli = Cli({**{k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}, **env})
    levels = [0, *(max(1, round(n * args.scale)) for n in args.levels)]
    results: dict[int, Any] = {}
    stored = 0
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        api = Api(client, workflow.workflow)
        for level in levels:
            with out.status(f"recording {level - stored:,} runs (level {level:,})"):
                filler = record_runs(ours.store, ours.coordinator, plan, level - stored)
                finish(ours.redis, ours.store.keys, filler)
                stored = level
            recent = record_runs(ours.store, ours.coordinator, plan, RECENT)  # newest: a page is full at 0 too
            figures = {name: Figure() for name in OPERATIONS}
            warm = {name: Figure() for name in OPERATIONS}
            level_round(ours, api, cli, plan, workflow, (10, 1), warm)
            for n in range(args.rounds):
                with out.status(f"level {level:,}: round {n + 1}/{args.rounds}"):
                    level_round(ours, api, cli, plan, workflow, (args.ops, args.cli), figures)
            forget(ours.redis, ours.store.keys, plan, recent)
            memory = int(ours.redis.info("memory")["used_memory"])
            results[level] = {"figures": figures, "used_memory": memory, "dbsize": int(ours.redis.dbsize())}
            out.print(f"level {level:,}: " + ", ".join(f"{k} {f.median:.2f} ms" for k, f in figures.items()))
    ours.close()
    return levels, results


@dataclass
class Sweep:
    """One scenario of the sweeper: its passes' ms and the commands of a whole recovery."""

    live: int
    expired: int
    passes: Figure = field(default_factory=Figure)
    recovered: list[int] = field(default_factory=list)
    """Units re-dispatched per round (all passes)."""
    per_round: list[float] = field(default_factory=list)
    """Ms of all passes of a round (expired: until one found nothing)."""
    pass_counts: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "live": self.live,
            "expired": self.expired,
            **self.passes.summary(),
            "recovered_per_round": self.recovered,
            "round_ms": self.per_round,
            "passes_per_round": self.pass_counts,
        }


def claimed(ours: Ours, coordinator: Coordinator, plan: Plan, count: int) -> list[str]:
    """``count`` runs of ``plan`` whose root step this process claimed, with an hour's lease."""
    ids = record_runs(ours.store, coordinator, plan, count)
    for run_id in ids:
        message = StepMessage(run_id=run_id, plan_id=plan.plan_id, step=plan.roots[0])
        claim, _ = ours.store.steps.claim_and_read(message, f"t-{run_id}", "growth@bench", SWEEP_LEASE, StepReads())
        if not claim.ok:
            raise RuntimeError(f"could not claim {run_id}: {claim}")
    return ids


def sweep_round(ours: Ours, coordinator: Coordinator, plan: Plan, scenario: Sweep, passes: int) -> None:
    meter = Meter(ours.redis)
    if not scenario.expired:

        def sweep() -> None:
            if coordinator.recover():
                raise RuntimeError("a sweep without expired leases re-dispatched something")

        measure(meter, scenario.passes, passes, sweep)
        return
    ids = claimed(ours, coordinator, plan, scenario.expired)
    for run_id in ids:
        ours.store.leases.release(Unit(run_id, plan.roots[0]))  # its worker died: the lease is over
    times: list[float] = []
    recovered = 0
    meter.begin()
    while True:
        began = time.perf_counter()
        count = coordinator.recover()
        times.append((time.perf_counter() - began) * 1000)
        recovered += count
        if not count:
            break
    scenario.passes.commands.append(meter.end(scenario.expired))  # per expired unit
    scenario.passes.rounds.append(times)
    scenario.per_round.append(sum(times))
    scenario.pass_counts.append(len(times))
    scenario.recovered.append(recovered)
    ours.purge()
    forget(ours.redis, ours.store.keys, plan, ids)


def run_sweeps(processes: Processes, args: argparse.Namespace, out: Console) -> list[Sweep]:
    ours = Ours(processes, prefix="sweep")
    coordinator = Coordinator(
        ours.store, ours.coordinator.dispatcher, base_policy=ours.coordinator.base_policy, lease_seconds=SWEEP_LEASE
    )
    plan = coordinator.compile(ours.workflow({"workflow": "one", "steps": {"only": {"task": "bench.noop"}}}))
    live, expired = max(1, round(args.live * args.scale)), max(1, round(args.expired * args.scale))
    scenarios = [Sweep(0, 0), Sweep(0, expired), Sweep(live, 0), Sweep(live, expired)]
    for scenario in scenarios:
        if scenario.live and not ours.redis.zcard(ours.store.keys.leases()):
            with out.status(f"claiming {live:,} steps (live leases)"):
                claimed(ours, coordinator, plan, live)
        sweep_round(ours, coordinator, plan, scenario, 3)  # warm
        scenario.passes, scenario.recovered, scenario.per_round, scenario.pass_counts = Figure(), [], [], []
        for n in range(args.rounds):
            with out.status(f"sweep, {scenario.live:,} live, {scenario.expired:,} expired: round {n + 1}"):
                sweep_round(ours, coordinator, plan, scenario, args.passes)
        out.print(
            f"sweep {scenario.live:,} live / {scenario.expired:,} expired: {scenario.passes.median:.2f} ms a pass"
        )
    ours.close()
    return scenarios


def levels_table(levels: list[int], results: dict[int, Any], args: argparse.Namespace) -> Table:
    table = Table(title=f"cost per operation vs runs in the store, median of {args.rounds} rounds of {args.ops}")
    table.add_column("operation")
    for level in levels:
        table.add_column(f"{level:,} runs: ms (p99)", justify="right")
    table.add_column(f"{levels[-1]:,} / 0", justify="right")
    for level in levels:
        table.add_column(f"cmds ({level:,})", justify="right")
    for name in OPERATIONS:
        figures = [results[level]["figures"][name] for level in levels]
        commands = [f"{f.command():.1f}" if f.commands else "" for f in figures]
        table.add_row(
            name,
            *(f"{f.median:.2f} ({f.p99:.2f})" for f in figures),
            ratio(figures[-1].median / figures[0].median),
            *commands,
        )
    return table


def sweeps_table(scenarios: list[Sweep], rounds: int) -> Table:
    table = Table(title=f"Coordinator.recover (the sweep), median of {rounds} rounds")
    columns = ("live leases", "expired", "ms a pass", "p99", "passes", "ms all passes", "ms per expired", "commands")
    for column in columns:
        table.add_column(column, justify="right")
    for s in scenarios:
        all_passes = median(s.per_round)
        table.add_row(
            f"{s.live:,}",
            f"{s.expired:,}",
            f"{s.passes.median:.2f}",
            f"{s.passes.p99:.2f}",
            f"{median([float(c) for c in s.pass_counts]):.0f}" if s.pass_counts else "1",
            "" if math.isnan(all_passes) else f"{all_passes:.1f}",
            "" if not s.expired else f"{all_passes / s.expired:.3f}",
            f"{s.passes.command():.1f} per {'expired unit' if s.expired else 'pass'}",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--levels", type=int, nargs="+", default=[10_000, 50_000], help="runs in the store, after 0")
    parser.add_argument("--live", type=int, default=10_000)
    parser.add_argument("--expired", type=int, default=1_000)
    parser.add_argument("--ops", type=int, default=200, help="calls of each operation per round")
    parser.add_argument("--cli", type=int, default=3, help="CLI calls of each kind per round")
    parser.add_argument("--passes", type=int, default=20, help="sweeper passes per round without expired leases")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --levels, --live, --expired")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the API's log")
    args = parser.parse_args(argv)
    out = console()
    with Processes(keep=args.keep) as processes:
        levels, results = run_levels(processes, args, out)
        scenarios = run_sweeps(processes, args, out)

    out.print(levels_table(levels, results, args))
    out.print(sweeps_table(scenarios, args.rounds))
    base = {s.expired: s for s in scenarios if not s.live}
    path = write(
        "growth",
        argv if argv is not None else sys.argv[1:],
        {
            "rounds": args.rounds,
            "ops": args.ops,
            "levels": [
                {
                    "runs": level,
                    "used_memory": results[level]["used_memory"],
                    "dbsize": results[level]["dbsize"],
                    **{name: f.summary() for name, f in results[level]["figures"].items()},
                }
                for level in levels
            ],
            "sweeps": [s.summary() for s in scenarios],
            "ratios": {
                **{
                    f"{name} {levels[-1]}/0": results[levels[-1]]["figures"][name].median
                    / results[0]["figures"][name].median
                    for name in OPERATIONS
                },
                "sweep pass, live/none": scenarios[2].passes.median / base[0].passes.median,
                "sweep of the expired, with live/without": median(scenarios[3].per_round)
                / median(base[scenarios[1].expired].per_round),
            },
        },
        [],
    )
    out.print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
