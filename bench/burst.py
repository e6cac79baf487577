"""A burst of ready steps: one root, then 150 steps that need only it, vs ``celery.group``.

Run from the repository root::

    python3 -m bench.burst                  # 150 steps, 3 rounds, threads -c 32 and prefork 2
    python3 -m bench.burst --scale 0.2      # 30 steps
    python3 -m bench.burst --pools threads  # one pool only

Ours: a workflow ``root`` -> ``s0`` .. ``s149``, each ``needs: [root]`` (not ``for_each``): when
the root ends, ``complete.lua`` makes all 150 ready at once and the worker publishes them. Plain
Celery: ``chain(root, group(150 tasks))``, so the worker that ran the root publishes the group
(the same moment of the same work). One worker node per system with the pool under test
(``--pool threads --concurrency 32``, and ``--pool prefork --concurrency 2``), one pool after the
other, each on a fresh Redis.

Figures, per pool (medians over rounds): the **start rate**, steps started per second from the
root's end to the last step's start; the **worst dispatch lag**, root's end to the last step's
start; and the median lag. Ours reads the run record (root ``finished_at``, each step's
``started_at``, which the claim writes); plain Celery reads the times its tasks record (end in
the body, start in ``task_prerun``). No target.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from celery import chain, group
from rich.table import Table

from bench.processes import Processes
from bench.report import console, median, ms, ratio, write
from bench.systems import Ours, Plain, timestamp

TIMEOUT = 300.0
POOLS = {"threads": 32, "prefork": 2}


@dataclass
class Burst:
    """One system's rounds on one pool: every step's lag after the root's end, per round."""

    name: str
    rounds: list[list[float]] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return median([max(lags) for lags in self.rounds])

    @property
    def typical(self) -> float:
        return median([median(lags) for lags in self.rounds])

    @property
    def rate(self) -> float:
        return median([len(lags) / max(lags) for lags in self.rounds])

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "start_rate_per_second": self.rate,
            "worst_lag": self.worst,
            "median_lag": self.typical,
            "rounds_worst_lag": [max(lags) for lags in self.rounds],
        }


def burst_workflow(width: int) -> dict[str, Any]:
    steps: dict[str, Any] = {"root": {"task": "bench.noop"}}
    steps.update({f"s{i}": {"task": "bench.noop", "needs": ["root"]} for i in range(width)})
    return {"workflow": f"burst-{width}", "steps": steps}


def run_ours(ours: Ours, width: int) -> list[float]:
    _, record = ours.run(burst_workflow(width), TIMEOUT)
    root_end = timestamp(record.steps["root"].finished_at)
    return [timestamp(record.steps[f"s{i}"].started_at) - root_end for i in range(width)]


def run_plain(plain: Plain, width: int) -> list[float]:
    timed = plain.task("plain.timed")
    key = f"burst:{uuid.uuid4().hex}"
    chain(timed.si(key=key, i=-1), group(timed.si(key=key, i=i) for i in range(width))).apply_async()
    ends = plain.wait_times(key, "end", width + 1, TIMEOUT)
    starts = plain.times(key, "start")
    return [starts[i] - ends[-1] for i in range(width)]


def measure(pool: str, concurrency: int, width: int, rounds: int, keep: bool) -> tuple[Burst, Burst]:
    ours_burst, plain_burst = Burst(f"ours, {pool} {concurrency}"), Burst(f"celery.group, {pool} {concurrency}")
    with Processes(keep=keep) as processes:
        ours, plain = Ours(processes), Plain(processes)
        ours.worker("ours", concurrency, pool=pool, wait=False)
        plain.worker("plain", concurrency, pool=pool, wait=False)
        for worker in processes.workers:
            worker.wait_ready()
        run_ours(ours, 10)
        run_plain(plain, 10)
        for _ in range(rounds):
            ours_burst.rounds.append(run_ours(ours, width))
            plain_burst.rounds.append(run_plain(plain, width))
        ours.close()
        plain.close()
    return ours_burst, plain_burst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--width", type=int, default=150, help="steps that need the root")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --width (quick runs: 0.2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pools", nargs="+", choices=list(POOLS), default=list(POOLS))
    parser.add_argument("--keep", action="store_true", help="keep worker logs")
    args = parser.parse_args(argv)
    width = max(2, round(args.width * args.scale))
    out = console()
    results: list[tuple[Burst, Burst]] = []
    for pool in args.pools:
        with out.status(f"{pool} pool, {args.rounds} rounds"):
            results.append(measure(pool, POOLS[pool], width, args.rounds, args.keep))

    table = Table(title=f"a burst of {width} ready steps after one root, median of {args.rounds} rounds")
    for column in ("system, pool", "start rate steps/s", "worst lag ms", "median lag ms", "ours / group: worst lag"):
        table.add_column(column, justify="left" if column.startswith("system") else "right")
    for ours_burst, plain_burst in results:
        for burst in (ours_burst, plain_burst):
            table.add_row(
                burst.name,
                f"{burst.rate:,.0f}",
                ms(burst.worst),
                ms(burst.typical),
                ratio(ours_burst.worst / burst.worst),
            )
    out.print(table)
    path = write(
        "burst",
        argv if argv is not None else sys.argv[1:],
        {
            "width": width,
            "rounds": args.rounds,
            "pools": {pool: POOLS[pool] for pool in args.pools},
            "series": [b.summary() for pair in results for b in pair],
            "ratios": {
                f"{pool} ours/group worst lag": o.worst / p.worst
                for pool, (o, p) in zip(args.pools, results, strict=True)
            },
        },
        [],
    )
    out.print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
