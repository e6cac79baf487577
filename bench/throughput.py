"""Step throughput: 5,000 no-op steps through our system vs the same 5,000 tasks on plain Celery.

Run from the repository root::

    python3 -m bench.throughput                 # 50 chains of 100 steps, 3 rounds
    python3 -m bench.throughput --scale 0.2     # 10 chains of 100: a quick run

Shape: ``--chains`` parallel chains of ``--length`` no-op steps (50 x 100 by default). Every step
but the first of each chain starts because its need ended, so each one pays the whole per-step
path of a workflow (claim, run, record the outcome and advance the join, publish the dependent),
and with 50 steps ready at any moment the two pool processes never wait for work: the figure
is the per-step cost, not latency. (A wide group would measure fan-out dispatch instead; that is
``bench.fanout``.)

Baselines, on the same private Redis with one worker node of the same pool and concurrency and
the same reliability settings (``acks_late``, ``reject_on_worker_lost``, prefetch 1):

- ``plain flat``: the 5,000 tasks as independent messages, published in one kombu batch
  (Celery's fastest way to send them): the most plain Celery can do, and the target's reference;
- ``plain chains``: the same 50 x 100 shape as ``celery.chain`` (each message carries the rest of
  its chain).

A plain task increments a counter in Redis (so the benchmark knows when all ran), which our no-op
does not: the comparison is slightly in plain Celery's favour. Throughput is steps divided by the
time from the submit call to the end of the last step (from our run record; from the timestamp
the last plain task wrote). Systems alternate within each round so that load from other
processes on the machine hits them alike; the reported figure is the median over rounds.
Target: our throughput is at least 0.8 of plain flat's.

``--nodes 2`` runs each system on two worker nodes (same ``--concurrency`` each). By default a
fourth series, ``ours, INFO logs``, runs the same workflow on nodes of ours started at
``--loglevel INFO`` (the setting's default, ``ORCH_LOG__LEVEL``) under another key prefix: their
output is a file, so every state change is a JSON line (``step.queued``, ``step.started``,
``step.succeeded``). The main ``ours`` series runs at WARNING, as every benchmark does, where the
log observer's lines are dropped by level; the ratio between the two is what the logs cost.
``--no-info-logs`` leaves that series out.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from celery import chain
from rich.table import Table

from bench.processes import Processes, cpu_seconds
from bench.report import RESULTS, Target, console, median, ratio, targets_table, write
from bench.systems import Ours, Plain, add_common_arguments, timestamp

TARGET = 0.8
TIMEOUT = 900.0
CPU_PARTS = ("workers", "pool", "redis", "caller")
"""The CPU figures per step each series reports (``pool`` is a share of ``workers``)."""


@dataclass(frozen=True)
class Cpu:
    """CPU seconds used so far by one system's worker nodes, by the Redis server, and by this process
    (the caller: submitting, publishing, waiting); ``pool`` is the share of ``workers`` its nodes'
    pool processes used (the rest is their main processes: Celery's consumer)."""

    workers: float
    redis: float
    caller: float
    pool: float = 0.0

    @classmethod
    def now(cls, processes: Processes, nodes: str) -> Cpu:
        """Now, for the worker nodes whose name starts with ``nodes``."""
        mine = [w for w in processes.workers if w.name.startswith(nodes)]
        assert processes.redis.process is not None
        workers = sum(w.cpu() for w in mine)
        main = sum(cpu_seconds(w.process.pid, tree=False) for w in mine)
        return cls(workers, cpu_seconds(processes.redis.process.pid), time.process_time(), workers - main)

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(
            self.workers - other.workers,
            self.redis - other.redis,
            self.caller - other.caller,
            self.pool - other.pool,
        )


@dataclass
class Series:
    """Throughput samples of one system, one per round, and the CPU each round used (µs per step)."""

    name: str
    seconds: list[float] = field(default_factory=list)
    steps: int = 0
    cpu: list[dict[str, float]] = field(default_factory=list)

    def measure(self, processes: Processes, nodes: str, run: Callable[[], float]) -> None:
        """Run one round of this series on the nodes named ``nodes``*, timing it and counting its CPU."""
        before = Cpu.now(processes, nodes)
        self.seconds.append(run())
        used = Cpu.now(processes, nodes) - before
        self.cpu.append({k: v / self.steps * 1e6 for k, v in asdict(used).items()})

    def cpu_median(self, part: str) -> float:
        return median([c[part] for c in self.cpu])

    @property
    def per_second(self) -> list[float]:
        return [self.steps / s for s in self.seconds]

    @property
    def median(self) -> float:
        return median(self.per_second)


def chains_workflow(chains: int, length: int) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for c in range(chains):
        for i in range(length):
            steps[f"c{c}_{i}"] = {"task": "bench.noop", "needs": [f"c{c}_{i - 1}"] if i else []}
    return {"workflow": f"throughput-{chains}x{length}", "steps": steps}


def run_ours(ours: Ours, data: dict[str, Any]) -> float:
    started, record = ours.run(data, TIMEOUT)  # validation (the loader's job) is outside the clock
    return timestamp(record.finished_at) - started


def run_plain_chains(plain: Plain, chains: int, length: int) -> float:
    count = plain.task("plain.count")
    key = f"tp:{uuid.uuid4().hex}"
    total = chains * length
    canvases = [chain(count.si(key, total) for _ in range(length)) for _ in range(chains)]
    started = time.time()
    for canvas in canvases:
        canvas.apply_async()
    return plain.wait_count(key, total, TIMEOUT) - started


def run_plain_flat(plain: Plain, total: int) -> float:
    count = plain.task("plain.count")
    key = f"tp:{uuid.uuid4().hex}"
    started = time.time()
    with plain.app.producer_or_acquire() as producer, producer.batch(max_size=1000):
        for _ in range(total):
            count.apply_async((key, total), producer=producer)
    return plain.wait_count(key, total, TIMEOUT) - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chains", type=int, default=50)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the number of chains (quick runs: 0.1)")
    parser.add_argument("--nodes", type=int, default=1, help="worker nodes per system")
    parser.add_argument(
        "--info-logs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run ours at --loglevel INFO (JSON lines per state change)",
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    chains = max(1, round(args.chains * args.scale))
    total = chains * args.length
    out = console()

    ours_series = Series("ours", steps=total)
    flat = Series("plain flat", steps=total)
    chained = Series("plain chains", steps=total)
    logged = Series("ours, INFO logs", steps=total)
    with Processes(keep=args.keep) as processes:
        ours, plain = Ours(processes), Plain(processes)
        info = Ours(processes, prefix="benchinfo") if args.info_logs else None
        for node in range(args.nodes):
            ours.worker(f"ours{node}", args.concurrency, wait=False)
            plain.worker(f"plain{node}", args.concurrency, wait=False)
            if info is not None:
                info.worker(f"info{node}", args.concurrency, wait=False, loglevel="INFO")
        for worker in processes.workers:
            worker.wait_ready()
        with out.status("warming up..."):  # first tasks of a fresh pool import and connect
            for system in (ours, info) if info is not None else (ours,):
                run_ours(system, chains_workflow(2 * args.nodes, 20))
            run_plain_chains(plain, 2 * args.nodes, 20)
            run_plain_flat(plain, 40 * args.nodes)
        for n in range(args.rounds):
            workflow = chains_workflow(chains, args.length)
            with out.status(f"round {n + 1}/{args.rounds}: ours"):
                ours_series.measure(processes, "ours", partial(run_ours, ours, workflow))
            if info is not None:
                with out.status(f"round {n + 1}/{args.rounds}: ours, INFO logs"):
                    logged.measure(processes, "info", partial(run_ours, info, workflow))
            with out.status(f"round {n + 1}/{args.rounds}: plain flat"):
                flat.measure(processes, "plain", partial(run_plain_flat, plain, total))
            with out.status(f"round {n + 1}/{args.rounds}: plain chains"):
                chained.measure(processes, "plain", partial(run_plain_chains, plain, chains, args.length))
        ours.close()
        plain.close()
        if info is not None:
            info.close()
    shown = [ours_series, flat, chained] + ([logged] if args.info_logs else [])

    table = Table(
        title=f"step throughput: {total:,} no-op steps ({chains} chains x {args.length}), "
        f"{args.nodes} node(s) x {args.concurrency} prefork, median of {args.rounds} rounds"
    )
    columns: tuple[str, ...] = ("system", "seconds (each round)", "steps/s", "ours / this")
    columns += ("CPU µs/step: workers", "of which pools", "Redis", "caller", "all")
    for column in columns:
        table.add_column(column, justify="right" if column != "system" else "left")
    for series in shown:
        cpu = [series.cpu_median(part) for part in CPU_PARTS]
        table.add_row(
            series.name,
            " ".join(f"{s:.2f}" for s in series.seconds),
            f"{series.median:,.0f}",
            ratio(ours_series.median / series.median),
            *(f"{c:,.0f}" for c in cpu),
            f"{median([c['workers'] + c['redis'] + c['caller'] for c in series.cpu]):,.0f}",
        )
    value = ours_series.median / flat.median
    targets = [Target("step throughput", f"ours / plain flat >= {TARGET}", value, value >= TARGET)]
    out.print(table)
    out.print(targets_table(targets))
    path = write(
        "throughput",
        argv if argv is not None else [],
        {
            "chains": chains,
            "length": args.length,
            "steps": total,
            "concurrency": args.concurrency,
            "nodes": args.nodes,
            "rounds": args.rounds,
            "series": [
                asdict(s)
                | {
                    "per_second": s.per_second,
                    "median_per_second": s.median,
                    "cpu_median_usec_per_step": {p: s.cpu_median(p) for p in CPU_PARTS},
                }
                for s in shown
            ],
            "ratios": {
                "ours/plain_flat": value,
                "ours/plain_chains": ours_series.median / chained.median,
                **({"ours_info_logs/ours": logged.median / ours_series.median} if args.info_logs else {}),
            },
        },
        targets,
        output=None if args.nodes == 1 else RESULTS / f"throughput-{args.nodes}nodes.json",
    )
    out.print(f"written to {path}")
    return 0 if all(t.met for t in targets) else 1


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
