"""Redis commands per step: our step path vs plain Celery's flat tasks and ``celery.chain``.

Run from the repository root::

    python3 -m bench.commands                 # a 200-step chain, 3 rounds
    python3 -m bench.commands --scale 0.25    # 50 steps

Each round runs, one after the other on the benchmark's private Redis (one worker node per
system, prefork ``--concurrency``): ours, a chain of ``--length`` no-op steps; ``plain flat``, the
same number of independent ``plain.count`` tasks published in one batch; ``plain chain``, a
``celery.chain`` of them. While a system runs, ``redis-cli monitor`` records every command the
server executes, with its database and its client (``lua`` for the calls a script makes), so the
counts are the system's own: ours uses database 0, plain Celery databases 1 and 2, and the
benchmark's polling connection is left out by its address. The window runs from the submit call
to 0.3 s after the last step ended (acks and other tails), so it also holds the system's idle
traffic for that time (``BRPOP`` timeouts, our lease sweeper), which the table reports apart
as commands per second with nothing running.

Figures, per step (median over rounds):

- commands the clients sent, by name, and their total;
- commands Lua scripts called (``redis.call`` inside ``EVALSHA``), by name: they cost the server
  time but no round trip;
- round trips: reads the server processed (``INFO stats`` ``total_reads_processed``) during the
  window, less the other system's and the poller's commands. One read is one batch the client
  sent (a command, or a whole pipeline); a message larger than the server's 16 KB read buffer
  takes more than one read, which counts a long ``celery.chain``'s first messages more than once;
- ``INFO commandstats`` before and after, server-wide (so including the other system's idle
  traffic and the calls scripts make), by name, for reference.

A plain task's body does one ``INCR`` (and the last one a ``SET``): that is how the benchmark
knows the batch is done; our no-op does nothing.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import chain
from redis import Redis
from rich.table import Table

from bench.processes import Processes
from bench.report import console, ratio, write
from bench.systems import OURS_DB, PLAIN_BACKEND_DB, PLAIN_DB, Ours, Plain, add_common_arguments, start

TIMEOUT = 300.0
TAIL = 0.3
IDLE_WINDOW = 3.0
LINE = re.compile(r'^(?P<ts>\d+\.\d+) \[(?P<db>\d+) (?P<client>[^\]]+)\] "(?P<command>[^"]*)"')


@dataclass(frozen=True)
class Command:
    """One line of ``MONITOR``."""

    at: float
    db: int
    client: str
    name: str


class Monitor:
    """``redis-cli monitor`` into a file for the whole benchmark; :meth:`window` reads a time slice."""

    def __init__(self, port: int, directory: Path) -> None:
        self.path = directory / "monitor.log"
        self.sink = self.path.open("wb")
        self.process = subprocess.Popen(
            ["redis-cli", "-p", str(port), "monitor"], stdout=self.sink, stderr=subprocess.DEVNULL
        )
        time.sleep(0.3)

    def window(self, start: float, end: float) -> list[Command]:
        self.sink.flush()
        time.sleep(0.2)  # let redis-cli write what it has
        found = []
        with self.path.open(errors="replace") as lines:
            for line in lines:
                match = LINE.match(line)
                if match and start <= float(match["ts"]) <= end:
                    found.append(
                        Command(float(match["ts"]), int(match["db"]), match["client"], match["command"].upper())
                    )
        return found

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self.sink.close()


@dataclass
class Sample:
    """What one system did for one run."""

    steps: int
    seconds: float
    sent: Counter[str]
    scripted: Counter[str]
    round_trips: float
    commandstats: Counter[str]

    def per_step(self) -> dict[str, Any]:
        return {
            "sent": {k: v / self.steps for k, v in self.sent.items()},
            "scripted": {k: v / self.steps for k, v in self.scripted.items()},
            "sent_total": sum(self.sent.values()) / self.steps,
            "scripted_total": sum(self.scripted.values()) / self.steps,
            "round_trips": self.round_trips / self.steps,
            "commandstats": {k: v / self.steps for k, v in self.commandstats.items()},
        }


@dataclass
class System:
    name: str
    dbs: frozenset[int]
    samples: list[Sample] = field(default_factory=list)
    idle_per_second: float = 0.0

    def median(self, figure: str, command: str | None = None) -> float:
        values = []
        for sample in self.samples:
            per = sample.per_step()[figure]
            values.append(per.get(command, 0.0) if command is not None else per)
        return float(statistics.median(values)) if values else float("nan")

    def names(self, figure: str) -> set[str]:
        return {name for sample in self.samples for name in sample.per_step()[figure]}


def commandstats(redis: Redis) -> Counter[str]:
    info = redis.info("commandstats")
    return Counter({k.removeprefix("cmdstat_").upper(): int(v["calls"]) for k, v in info.items()})


def reads(redis: Redis) -> int:
    return int(redis.info("stats")["total_reads_processed"])


class Meter:
    """Counts what a system does between :meth:`begin` and :meth:`end`."""

    def __init__(self, monitor: Monitor, admin: Redis, poller: Redis) -> None:
        self.monitor, self.admin, self.poller = monitor, admin, poller
        self.poller_address = str(poller.client_info()["addr"])

    def begin(self) -> None:
        self.stats, self.reads, self.start = commandstats(self.admin), reads(self.admin), time.time()

    def end(self, system: System, steps: int) -> Sample:
        time.sleep(TAIL)
        stop = time.time()
        stats_after, reads_after = commandstats(self.admin), reads(self.admin)
        lines = self.monitor.window(self.start, stop)
        own = [c for c in lines if c.db in system.dbs and c.client != self.poller_address]
        others = [c for c in lines if c.client != "lua" and (c.db not in system.dbs or c.client == self.poller_address)]
        sent = Counter(c.name for c in own if c.client != "lua")
        scripted = Counter(c.name for c in own if c.client == "lua")
        # INFO's own two calls at the end are reads as well (the ones at the start came before).
        round_trips = reads_after - self.reads - len(others) - 2
        return Sample(steps, stop - self.start, sent, scripted, round_trips, stats_after - self.stats)

    def idle(self, systems: Iterable[System]) -> None:
        start = time.time()
        time.sleep(IDLE_WINDOW)
        lines = self.monitor.window(start, time.time())
        for system in systems:
            count = sum(1 for c in lines if c.db in system.dbs and c.client not in ("lua", self.poller_address))
            system.idle_per_second = count / IDLE_WINDOW


def run_ours(ours: Ours, poller: Redis, length: int) -> None:
    steps = {f"s{i}": {"task": "bench.noop", "needs": [f"s{i - 1}"] if i else []} for i in range(length)}
    workflow = ours.workflow({"workflow": f"commands-{length}", "steps": steps})
    run_id = ours.coordinator.submit(workflow).run_id
    key = ours.store.keys.run(run_id)
    deadline = time.monotonic() + TIMEOUT
    while poller.hget(key, "status") != "succeeded":
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} not done after {TIMEOUT:g}s")
        time.sleep(0.05)


def wait_done(poller: Redis, key: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while poller.get(f"{key}:done") is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key} not done after {TIMEOUT:g}s")
        time.sleep(0.05)


def run_plain_flat(plain: Plain, poller: Redis, length: int) -> None:
    count = plain.task("plain.count")
    key = f"cmd:{uuid.uuid4().hex}"
    with plain.app.producer_or_acquire() as producer, producer.batch(max_size=1000):
        for _ in range(length):
            count.apply_async((key, length), producer=producer)
    wait_done(poller, key)


def run_plain_chain(plain: Plain, poller: Redis, length: int) -> None:
    count = plain.task("plain.count")
    key = f"cmd:{uuid.uuid4().hex}"
    chain(count.si(key, length) for _ in range(length)).apply_async()
    wait_done(poller, key)


def table(systems: list[System], length: int, rounds: int) -> Table:
    result = Table(title=f"Redis commands per step: {length} steps, median of {rounds} rounds")
    result.add_column("per step", justify="left")
    for system in systems:
        result.add_column(system.name, justify="right")
    sent = sorted(set().union(*(s.names("sent") for s in systems)))
    scripted = sorted(set().union(*(s.names("scripted") for s in systems)))
    for name in sent:
        values = [system.median("sent", name) for system in systems]
        if max(values) >= 0.005:
            result.add_row(name, *(f"{v:.2f}" for v in values))
    result.add_row("[b]commands sent[/b]", *(f"[b]{s.median('sent_total'):.2f}[/b]" for s in systems))
    result.add_row("[b]round trips (server reads)[/b]", *(f"[b]{s.median('round_trips'):.2f}[/b]" for s in systems))
    for name in scripted:
        values = [system.median("scripted", name) for system in systems]
        if max(values) >= 0.005:
            result.add_row(f"  in scripts: {name}", *(f"{v:.2f}" for v in values))
    result.add_row("called by scripts", *(f"{s.median('scripted_total'):.2f}" for s in systems))
    result.add_row("idle commands/s (nothing running)", *(f"{s.idle_per_second:.1f}" for s in systems))
    ours = systems[0]
    result.add_row(
        "ours / this: commands sent", *(ratio(ours.median("sent_total") / s.median("sent_total")) for s in systems)
    )
    result.add_row(
        "ours / this: round trips", *(ratio(ours.median("round_trips") / s.median("round_trips")) for s in systems)
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--length", type=int, default=200, help="steps per run")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --length (quick runs: 0.25)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    length = max(10, round(args.length * args.scale))
    out = console()
    ours_system = System("ours (chain)", frozenset({OURS_DB}))
    flat = System("plain flat", frozenset({PLAIN_DB, PLAIN_BACKEND_DB}))
    chained = System("plain celery.chain", frozenset({PLAIN_DB, PLAIN_BACKEND_DB}))
    systems = [ours_system, flat, chained]
    with Processes(keep=args.keep) as processes:
        ours, plain = start(processes, args.concurrency)
        monitor = Monitor(processes.redis.port, processes.tmp)
        try:
            pollers = {OURS_DB: processes.redis.client(OURS_DB), PLAIN_DB: processes.redis.client(PLAIN_DB)}
            admin = processes.redis.client(PLAIN_BACKEND_DB)
            with out.status("warming up..."):
                run_ours(ours, pollers[OURS_DB], 10)
                run_plain_flat(plain, pollers[PLAIN_DB], 10)
                run_plain_chain(plain, pollers[PLAIN_DB], 10)
                time.sleep(1)
            ours_meter = Meter(monitor, admin, pollers[OURS_DB])
            plain_meter = Meter(monitor, admin, pollers[PLAIN_DB])
            with out.status("idle traffic..."):
                ours_meter.idle([ours_system])
                plain_meter.idle([flat, chained])
            for n in range(args.rounds):
                with out.status(f"round {n + 1}/{args.rounds}"):
                    ours_meter.begin()
                    run_ours(ours, pollers[OURS_DB], length)
                    ours_system.samples.append(ours_meter.end(ours_system, length))
                    plain_meter.begin()
                    run_plain_flat(plain, pollers[PLAIN_DB], length)
                    flat.samples.append(plain_meter.end(flat, length))
                    plain_meter.begin()
                    run_plain_chain(plain, pollers[PLAIN_DB], length)
                    chained.samples.append(plain_meter.end(chained, length))
        finally:
            monitor.stop()
        ours.close()
        plain.close()

    out.print(table(systems, length, args.rounds))
    path = write(
        "commands",
        argv if argv is not None else sys.argv[1:],
        {
            "length": length,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "systems": [
                {
                    "name": s.name,
                    "idle_commands_per_second": s.idle_per_second,
                    "median_per_step": {
                        "sent_total": s.median("sent_total"),
                        "round_trips": s.median("round_trips"),
                        "scripted_total": s.median("scripted_total"),
                        "sent": {name: s.median("sent", name) for name in sorted(s.names("sent"))},
                        "scripted": {name: s.median("scripted", name) for name in sorted(s.names("scripted"))},
                        "commandstats": {
                            name: s.median("commandstats", name) for name in sorted(s.names("commandstats"))
                        },
                    },
                    "rounds": [sample.per_step() | {"seconds": sample.seconds} for sample in s.samples],
                }
                for s in systems
            ],
        },
        [],
    )
    out.print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
