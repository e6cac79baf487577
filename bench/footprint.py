"""What one Redis pays for our runs: memory per finished run and per step, server CPU per step.

Run from the repository root::

    python3 -m bench.footprint                # 1,000 runs of a 10-step chain, a 1,000-item for_each, 3 rounds
    python3 -m bench.footprint --scale 0.1    # 100 runs, 100 items

On the benchmark's private Redis, one worker node per system (prefork ``--concurrency``), ours and
plain Celery; each system is idle while the other runs. Each round runs, one after the other:

- **ours, chain**: ``--runs`` runs of :mod:`bench.runs`'s 10-step chain of no-op steps, submitted
  with ``Coordinator.submit`` in a loop, as fast as this process can; then it waits until all have
  finished (``ZCARD`` of the finished-runs index, one poll per 0.2 s) and 1 s more (the last acks);
- **ours, for_each**: one run of :mod:`bench.fanout`'s workflow over ``--items`` items (``params``);
- **plain flat**: ``--runs`` x 10 ``plain.count`` tasks published in batches of 1,000, as
  :mod:`bench.commands` runs them (a task's body is one ``INCRBY``, redis-py's ``incr``).

**Memory** (ours): ``used_memory`` (``INFO memory``) just before the submit and after the wait,
the delta divided by the runs and the steps (for_each: the items); and what ``orchestrator store
stats`` prints (:func:`orchestrator.store.stats.measure`, ``MEMORY USAGE`` of up to 2,000 keys of
each kind, the others estimated) before and after, keys and bytes per kind, the delta divided the
same way. ``MEMORY USAGE`` counts a key and its value, not its slot in the keyspace's hash table:
the kinds add up to less than ``used_memory``. Runs are not deleted between rounds (retention
keeps them a week): a round measures N more finished runs on top of those kept, as a store grows.

**CPU**: ``INFO commandstats`` and ``INFO cpu`` before and after each window (the submit to 1 s
after the wait), server-wide, less the idle rate (measured over 5 s with nothing running:
``BRPOP`` timeouts, our sweeper, the cron) times the window's length, divided by the steps:

- *commands*: the ``usec`` (time executing the command) of every command. Redis 7 counts a command
  a script calls (``redis.call``) under its own name and also inside its ``EVALSHA``'s ``usec``; not
  to count it twice, each command's share of calls made by scripts is read from ``redis-cli
  monitor`` (:class:`bench.commands.Monitor`, client ``lua``) over a calibration run of a tenth of
  the size (at least 100) before the rounds (no monitor during the rounds: feeding it costs the
  server), and that share of its ``usec`` is left out: ``EVALSHA`` plus what clients sent directly.
  ``INFO``, the benchmark's polls (their count times the command's mean ``usec``) and plain
  Celery's ``INCRBY`` (the task's body) are left out too;
- *server CPU*: ``used_cpu_sys + used_cpu_user``, every thread of the server: reading and parsing
  requests, writing replies, the event loop, the cron and the commands (less those left out).

The ceiling ``1e6 / usec per step`` is the steps per second one Redis core could serve doing
nothing else: from the commands alone (optimistic) and from the whole server CPU. Figures are
medians over ``--rounds``. No target.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from rich.table import Table

from bench.commands import Monitor
from bench.fanout import WORKFLOW as FOR_EACH
from bench.processes import Processes
from bench.report import console, median, ratio, write
from bench.runs import LENGTH, workflow_data
from bench.systems import OURS_DB, PLAIN_BACKEND_DB, PLAIN_DB, Ours, Plain, add_common_arguments, start
from orchestrator.store.stats import KindStats, measure

TIMEOUT = 900.0
POLL = 0.2
SETTLE = 1.0
IDLE = 5.0
SAMPLE = 2000
Stats = dict[str, tuple[float, float]]
"""``INFO commandstats``: command -> (calls, usec)."""


def commandstats(redis: Redis) -> Stats:
    info = redis.info("commandstats")
    return {k.removeprefix("cmdstat_").upper(): (float(v["calls"]), float(v["usec"])) for k, v in info.items()}


@dataclass(frozen=True)
class Snapshot:
    at: float
    stats: Stats
    cpu: float
    used_memory: int

    @classmethod
    def take(cls, redis: Redis) -> Snapshot:
        cpu, memory = redis.info("cpu"), redis.info("memory")
        cpu_seconds = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
        return cls(time.time(), commandstats(redis), cpu_seconds, int(memory["used_memory"]))

    def since(self, before: Snapshot, idle: Snapshot | None = None) -> Snapshot:
        """The delta, less ``idle``'s rate (a delta over its ``at`` seconds) times this one's length."""
        seconds = self.at - before.at
        scale = seconds / idle.at if idle else 0.0
        quiet = idle.stats if idle else {}
        stats = {}
        for name, (calls, usec) in self.stats.items():
            calls0, usec0 = before.stats.get(name, (0.0, 0.0))
            idle_calls, idle_usec = quiet.get(name, (0.0, 0.0))
            stats[name] = (max(calls - calls0 - idle_calls * scale, 0.0), max(usec - usec0 - idle_usec * scale, 0.0))
        cpu = self.cpu - before.cpu - (idle.cpu * scale if idle else 0.0)
        return Snapshot(seconds, stats, cpu, self.used_memory - before.used_memory)


@dataclass
class Sample:
    """One window of one series, per unit (step or item)."""

    units: int
    seconds: float
    """The window less the settling second."""
    sent: float
    usec: float
    evalsha: float
    cpu_usec: float
    used_memory: float = 0.0
    kinds: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Series:
    name: str
    unit: str
    dbs: frozenset[int]
    run: Callable[[int], Done]
    size: int
    excluded: frozenset[str] = frozenset({"INFO"})
    memory: bool = False
    shares: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)

    def median(self, figure: str) -> float:
        return median([float(getattr(s, figure)) for s in self.samples])

    def kind(self, name: str, figure: str) -> float:
        return median([s.kinds.get(name, {}).get(figure, 0.0) for s in self.samples])

    def calibrate(self, monitor: Monitor, size: int) -> None:
        """Each command's share of calls made by scripts, from ``MONITOR`` over a smaller workload."""
        begun = time.time()
        self.run(size).check()
        time.sleep(SETTLE)
        own = [c for c in monitor.window(begun, time.time()) if c.db in self.dbs]
        scripted = Counter(c.name for c in own if c.client == "lua")
        every = Counter(c.name for c in own)
        self.shares = {name: scripted[name] / every[name] for name in scripted}

    def measure(self, redis: Redis, ours: Ours, idle: Snapshot) -> Sample:
        kinds_before = measure(ours.redis, ours.store.keys, sample=SAMPLE).kinds if self.memory else {}
        before = Snapshot.take(redis)
        done = self.run(self.size)
        time.sleep(SETTLE)
        delta = Snapshot.take(redis).since(before, idle)
        done.check()
        units, polls = done.units, done.polls
        sent = usec = left_out = 0.0  # left_out: usec of the commands left out, taken off the CPU figure too
        for name, (calls, spent) in delta.stats.items():
            if name in self.excluded:
                left_out += spent
                continue
            if polls[name] and calls:
                polled = spent / calls * min(polls[name], calls)
                spent, calls, left_out = spent - polled, max(calls - polls[name], 0.0), left_out + polled
            share = self.shares.get(name, 0.0)
            sent += calls * (1 - share)
            usec += max(spent, 0.0) * (1 - share)
        scripts = sum(delta.stats.get(n, (0.0, 0.0))[1] for n in ("EVALSHA", "EVAL"))
        cpu = delta.cpu * 1e6 - left_out
        sample = Sample(units, delta.at - SETTLE, sent / units, usec / units, scripts / units, cpu / units)
        if self.memory:
            sample.used_memory = delta.used_memory / units
            after = measure(ours.redis, ours.store.keys, sample=SAMPLE).kinds
            for name in after.keys() | kinds_before.keys():
                new, old = after.get(name, KindStats()), kinds_before.get(name, KindStats())
                sample.kinds[name] = {"keys": (new.keys - old.keys) / units, "bytes": (new.bytes - old.bytes) / units}
        return sample


@dataclass
class Done:
    """A workload that ended: its units, the benchmark's own polls by command, a check run after the window."""

    units: int
    polls: Counter[str]
    check: Callable[[], None]


def wait_finished(ours: Ours, poller: Redis, count: int, polls: Counter[str]) -> None:
    """Until ``count`` more runs are in the finished-runs index than at the first poll."""

    def finished() -> int:
        polls["ZCARD"] += 1
        return int(poller.zcard(ours.store.keys.expiring()))

    target, deadline = finished() + count, time.monotonic() + TIMEOUT
    while finished() < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs not finished after {TIMEOUT:g}s")
        time.sleep(POLL)


def check(ours: Ours, run_ids: list[str]) -> None:
    pipe = ours.redis.pipeline(transaction=False)
    for run_id in run_ids:
        pipe.hget(ours.store.keys.run(run_id), "status")
    failed = [r for r, s in zip(run_ids, pipe.execute(), strict=True) if s != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} runs did not succeed, e.g. {failed[0]}")


def chain_runs(ours: Ours, poller: Redis) -> Callable[[int], Done]:
    workflow = ours.workflow(workflow_data())

    def run(count: int) -> Done:
        polls: Counter[str] = Counter()
        run_ids = [ours.coordinator.submit(workflow).run_id for _ in range(count)]
        wait_finished(ours, poller, count, polls)
        return Done(count * LENGTH, polls, lambda: check(ours, run_ids))

    return run


def for_each_run(ours: Ours, poller: Redis) -> Callable[[int], Done]:
    workflow = ours.workflow(FOR_EACH)

    def run(items: int) -> Done:
        polls: Counter[str] = Counter()
        run_id = ours.coordinator.submit(workflow, {"items": list(range(items))}).run_id
        wait_finished(ours, poller, 1, polls)
        return Done(items, polls, lambda: check(ours, [run_id]))

    return run


def plain_flat(plain: Plain, poller: Redis) -> Callable[[int], Done]:
    count = plain.task("plain.count")

    def run(tasks: int) -> Done:
        polls: Counter[str] = Counter()
        key = f"footprint:{uuid.uuid4().hex}"
        with plain.app.producer_or_acquire() as producer, producer.batch(max_size=1000):
            for _ in range(tasks):
                count.apply_async((key, tasks), producer=producer)

        def done() -> bool:
            polls["GET"] += 1
            return poller.get(f"{key}:done") is not None

        deadline = time.monotonic() + TIMEOUT
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{key} not done after {TIMEOUT:g}s")
            time.sleep(POLL)
        return Done(tasks, polls, lambda: None)

    return run


def per_core(usec: float) -> str:
    return f"{1e6 / usec:,.0f}" if usec > 0 else "n/a"


def memory_table(chain: Series, each: Series, runs: int, items: int, rounds: int) -> Table:
    table = Table(
        title=f"Redis memory (ours): {runs:,} finished runs of a {LENGTH}-step chain, a {items:,}-item for_each; "
        f"median of {rounds} rounds"
    )
    for column in ("", "keys / run", "bytes / run", "bytes / step", "keys / item", "bytes / item"):
        table.add_column(column, justify="left" if not column else "right")
    used, per_item = chain.median("used_memory"), each.median("used_memory")
    table.add_row("[b]used_memory delta[/b]", "", f"{used * LENGTH:,.0f}", f"{used:,.0f}", "", f"{per_item:,.0f}")
    names = sorted({n for s in (*chain.samples, *each.samples) for n in s.kinds}, key=lambda n: -chain.kind(n, "bytes"))
    rows = [(f"  {n}", [chain.kind(n, f) for f in ("keys", "bytes")] + [each.kind(n, f) for f in ("keys", "bytes")])
            for n in names]  # fmt: skip
    rows = [row for row in rows if max(abs(f) for f in row[1]) >= 0.005]
    totals = [sum(row[1][i] for row in rows) for i in range(4)]
    for label, (keys, size, item_keys, item_size) in [*rows, ("kinds (MEMORY USAGE)", totals)]:
        cells = (
            f"{keys * LENGTH:.2f}",
            f"{size * LENGTH:,.0f}",
            f"{size:,.0f}",
            f"{item_keys:.2f}",
            f"{item_size:,.0f}",
        )
        table.add_row(label, *cells)
    return table


def idle_rates(idle: Snapshot) -> tuple[float, float]:
    """Commands' and server CPU usec per second with nothing running."""
    return sum(u for n, (_, u) in idle.stats.items() if n != "INFO") / idle.at, idle.cpu * 1e6 / idle.at


def cpu_table(series: list[Series], idle: Snapshot, rounds: int) -> Table:
    table = Table(title=f"Redis CPU per step (per item, per task), median of {rounds} rounds")
    table.add_column("", justify="left")
    for s in series:
        table.add_column(f"{s.name} (per {s.unit})", justify="right")
    rows: list[tuple[str, Callable[[Series], str]]] = [
        ("commands sent (not counting scripts' calls)", lambda s: f"{s.median('sent'):.2f}"),
        ("commands: usec (EVALSHA + sent)", lambda s: f"{s.median('usec'):.1f}"),
        ("  of which EVALSHA", lambda s: f"{s.median('evalsha'):.1f}"),
        ("server CPU: usec (INFO cpu)", lambda s: f"{s.median('cpu_usec'):.1f}"),
        ("[b]ceiling per Redis core: commands[/b]", lambda s: f"[b]{per_core(s.median('usec'))}/s[/b]"),
        ("[b]ceiling per Redis core: server CPU[/b]", lambda s: f"[b]{per_core(s.median('cpu_usec'))}/s[/b]"),
        ("server CPU / plain flat's", lambda s: ratio(s.median("cpu_usec") / series[-1].median("cpu_usec"))),
        ("measured rate /s (this machine)", lambda s: f"{median([x.units / x.seconds for x in s.samples]):,.0f}"),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(s) for s in series))
    commands, cpu = idle_rates(idle)
    table.caption = f"idle, subtracted: {commands:,.0f} usec/s of commands, {cpu:,.0f} usec/s of CPU"
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1000, help="runs of the 10-step chain per round")
    parser.add_argument("--items", type=int, default=1000, help="items of the for_each run")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --runs and --items (quick runs: 0.1)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    runs, items = max(10, round(args.runs * args.scale)), max(10, round(args.items * args.scale))
    out = console()
    with Processes(keep=args.keep) as processes:
        ours, plain = start(processes, args.concurrency)
        admin = processes.redis.client(PLAIN_BACKEND_DB)
        poller, plain_poller = processes.redis.client(OURS_DB), processes.redis.client(PLAIN_DB)
        chain = Series("ours chain", "step", frozenset({OURS_DB}), chain_runs(ours, poller), runs, memory=True)
        each = Series("ours for_each", "item", frozenset({OURS_DB}), for_each_run(ours, poller), items, memory=True)
        flat = Series(
            "plain flat", "task", frozenset({PLAIN_DB, PLAIN_BACKEND_DB}), plain_flat(plain, plain_poller),
            runs * LENGTH, frozenset({"INFO", "INCRBY"}),
        )  # fmt: skip
        series = [chain, each, flat]
        with out.status("warming up, calibrating the scripts' shares (monitor)..."):
            for s, size in zip(series, (2, 10, 20), strict=True):
                s.run(size).check()
            monitor = Monitor(processes.redis.port, processes.tmp)
            try:
                for s in series:
                    s.calibrate(monitor, max(s.size // 10, min(s.size, 100)))
            finally:
                monitor.stop()
            time.sleep(1)
        with out.status("idle traffic..."):
            before = Snapshot.take(admin)
            time.sleep(IDLE)
            idle = Snapshot.take(admin).since(before)
        for n in range(args.rounds):
            for s in series:
                with out.status(f"round {n + 1}/{args.rounds}: {s.name}, {s.size:,}"):
                    s.samples.append(s.measure(admin, ours, idle))
        ours.close()
        plain.close()

    out.print(memory_table(chain, each, runs, items, args.rounds))
    out.print(cpu_table(series, idle, args.rounds))
    path = write(
        "footprint",
        argv if argv is not None else sys.argv[1:],
        {
            "runs": runs,
            "length": LENGTH,
            "items": items,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "idle_per_second": dict(zip(("commands_usec", "cpu_usec"), idle_rates(idle), strict=True)),
            "series": [summary(s) for s in series],
        },
        [],
    )
    out.print(f"written to {path}")
    return 0


def summary(s: Series) -> dict[str, Any]:
    figures = ("sent", "usec", "evalsha", "cpu_usec", "used_memory")
    found: dict[str, Any] = {"name": s.name, "unit": s.unit, "size": s.size, "scripted_share": s.shares}
    found["median_per_unit"] = {f: s.median(f) for f in figures if s.memory or f != "used_memory"}
    found["ceiling_per_core"] = {
        "commands": 1e6 / s.median("usec") if s.median("usec") > 0 else None,
        "server_cpu": 1e6 / s.median("cpu_usec") if s.median("cpu_usec") > 0 else None,
    }
    if s.memory:
        per_run = LENGTH if s.unit == "step" else 1
        found["used_memory_per_run"] = s.median("used_memory") * per_run
        names = sorted({n for x in s.samples for n in x.kinds})
        found["kinds_per_unit"] = {n: {"keys": s.kind(n, "keys"), "bytes": s.kind(n, "bytes")} for n in names}
    found["rounds"] = [vars(x) for x in s.samples]
    return found


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
