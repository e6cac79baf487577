"""Dispatch lag: from a step's last need finishing to the step starting.

Run from the repository root::

    python3 -m bench.lag                   # 200-step chain x 3 rounds, 3 random DAGs of 200 steps
    python3 -m bench.lag --scale 0.25      # 50-step chain and DAGs

For our system the lag of a step is ``started_at - max(finished_at of its needs)`` from the run
record (``finished_at`` is taken when the task returned, before the outcome is recorded and the
dependents are published; ``started_at`` when the next delivery claims the step). So it is the
whole path between two steps: record the end and advance the join, publish, broker, the worker's
main process, a pool process, the claim.

Plain Celery runs the same chain as ``celery.chain`` of tasks that record their start in
``task_prerun`` and their end as their body returns (``task_postrun`` comes after Celery has
already published the next task of the chain, so it would make the lag look negative); the lag of
task *i* is ``start[i] - end[i - 1]``.

Random DAGs (each step needs 1-3 random steps among the ``--window`` before it; not
series-parallel, so most joins are runtime joins) exist only for us: canvas cannot express them
without false waits. Several steps can be ready at once there, so a lag includes waiting for a
free pool process when both are busy. One worker node per system, prefork, ``--concurrency``
processes. There is no target for this benchmark; it reports median and p99.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from celery import chain
from rich.table import Table

from bench.processes import Processes
from bench.report import console, median, ms, percentile, ratio, write
from bench.systems import Ours, Plain, start, timestamp
from orchestrator.engine.records import RunRecord

TIMEOUT = 600.0


@dataclass
class Lags:
    name: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median(self.seconds)

    @property
    def p99(self) -> float:
        return percentile(self.seconds, 99)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "count": len(self.seconds), "median": self.median, "p99": self.p99}


def chain_steps(length: int) -> dict[str, list[str]]:
    return {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(length)}


def random_steps(length: int, rnd: random.Random, window: int, degree: int = 3) -> dict[str, list[str]]:
    names = [f"s{i}" for i in range(length)]
    return {
        name: sorted(rnd.sample(names[max(0, i - window) : i], min(i, rnd.randint(1, degree))))
        for i, name in enumerate(names)
    }


def step_lags(record: RunRecord, needs: dict[str, list[str]]) -> list[float]:
    lags = []
    for name, wanted in needs.items():
        if wanted:
            ready = max(timestamp(record.steps[n].finished_at) for n in wanted)
            lags.append(timestamp(record.steps[name].started_at) - ready)
    return lags


def run_ours(ours: Ours, name: str, needs: dict[str, list[str]]) -> list[float]:
    data = {"workflow": name, "steps": {s: {"task": "bench.noop", "needs": n} for s, n in needs.items()}}
    _, record = ours.run(data, TIMEOUT)
    return step_lags(record, needs)


def run_plain(plain: Plain, length: int) -> list[float]:
    timed = plain.task("plain.timed")
    key = f"lag:{uuid.uuid4().hex}"
    chain(timed.si(key=key, i=i) for i in range(length)).apply_async()
    ends = plain.wait_times(key, "end", length, TIMEOUT)
    starts = plain.times(key, "start")
    return [starts[i] - ends[i - 1] for i in range(1, length)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--length", type=int, default=200, help="steps of the chain and of each random DAG")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --length (quick runs: 0.25)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of the chain per system")
    parser.add_argument("--dags", type=int, default=3, help="random DAGs (one run each)")
    parser.add_argument("--window", type=int, default=4, help="a random step's needs are among the N before it")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes per worker node")
    parser.add_argument("--keep", action="store_true", help="keep worker logs")
    args = parser.parse_args(argv)
    length = max(3, round(args.length * args.scale))
    rnd = random.Random(args.seed)
    out = console()

    ours_chain, plain_chain, ours_dags = Lags("ours, chain"), Lags("plain celery.chain"), Lags("ours, random DAGs")
    with Processes(keep=args.keep) as processes:
        ours, plain = start(processes, args.concurrency)
        with out.status("warming up..."):
            run_ours(ours, "lag-warmup", chain_steps(10))
            run_plain(plain, 10)
        for n in range(args.rounds):
            with out.status(f"chain round {n + 1}/{args.rounds}"):
                ours_chain.seconds += run_ours(ours, f"lag-chain-{length}", chain_steps(length))
                time.sleep(0.2)
                plain_chain.seconds += run_plain(plain, length)
        for n in range(args.dags):
            with out.status(f"random DAG {n + 1}/{args.dags}"):
                ours_dags.seconds += run_ours(ours, f"lag-dag-{n}", random_steps(length, rnd, args.window))
        ours.close()
        plain.close()

    table = Table(
        title=f"dispatch lag (ms): {length}-step chain x {args.rounds} rounds, {args.dags} random DAGs of "
        f"{length} steps; 1 node x {args.concurrency} prefork"
    )
    for column in ("", "lags", "median ms", "p99 ms", "ours chain / this: median", "p99"):
        table.add_column(column, justify="left" if not column else "right")
    for lags in (ours_chain, plain_chain, ours_dags):
        table.add_row(
            lags.name,
            f"{len(lags.seconds):,}",
            ms(lags.median),
            ms(lags.p99),
            ratio(ours_chain.median / lags.median),
            ratio(ours_chain.p99 / lags.p99),
        )
    out.print(table)
    path = write(
        "lag",
        argv if argv is not None else sys.argv[1:],
        {
            "length": length,
            "rounds": args.rounds,
            "dags": args.dags,
            "window": args.window,
            "seed": args.seed,
            "concurrency": args.concurrency,
            "series": [lags.summary() for lags in (ours_chain, plain_chain, ours_dags)],
            "ratios": {
                "median ours/plain (chain)": ours_chain.median / plain_chain.median,
                "p99 ours/plain (chain)": ours_chain.p99 / plain_chain.p99,
            },
        },
        [],
    )
    out.print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
