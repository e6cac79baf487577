"""Many runs at once: 1,000 concurrent runs of a 10-step workflow vs one run alone.

Run from the repository root::

    python3 -m bench.runs                  # 1,000 runs of a 10-step chain, 3 rounds
    python3 -m bench.runs --scale 0.1      # 100 runs

Each round submits ``--runs`` runs of a 10-step chain of no-op steps as fast as this process can
(``Coordinator.submit`` in a loop), waits for all of them, and reads their records; then, on an
idle worker, runs the same workflow alone 5 times. One worker node, prefork ``--concurrency``.

Figures (medians over rounds): the total time from the first submit to the last step's end, the
submit time, steps per second, and the dispatch lag (a step's ``started_at`` minus its need's
``finished_at``), median and p99, for the concurrent runs and for the runs alone. With 1,000 runs
in flight, a step's lag is mostly its wait in the queue behind the other runs' steps: the p99
against the run alone is the cost of sharing the pool, not of dispatching. No target.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from bench.processes import Processes
from bench.report import console, median, ms, percentile, ratio, write
from bench.systems import Ours, timestamp
from orchestrator.engine.records import RunRecord

LENGTH = 10
ALONE = 5
TIMEOUT = 600.0


@dataclass
class Round:
    runs: int
    submit_seconds: float
    total_seconds: float
    lags: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "submit_seconds": self.submit_seconds,
            "total_seconds": self.total_seconds,
            "steps_per_second": self.runs * LENGTH / self.total_seconds,
            "lag_median": median(self.lags),
            "lag_p99": percentile(self.lags, 99),
        }


def workflow_data() -> dict[str, Any]:
    steps = {f"s{i}": {"task": "bench.noop", "needs": [f"s{i - 1}"] if i else []} for i in range(LENGTH)}
    return {"workflow": f"runs-chain-{LENGTH}", "steps": steps}


def lags(record: RunRecord) -> list[float]:
    return [
        timestamp(record.steps[f"s{i}"].started_at) - timestamp(record.steps[f"s{i - 1}"].finished_at)
        for i in range(1, LENGTH)
    ]


def wait_all(ours: Ours, run_ids: list[str]) -> None:
    keys = [ours.store.keys.run(r) for r in run_ids]
    deadline = time.monotonic() + TIMEOUT
    while keys:
        pipe = ours.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, "status")
        statuses = pipe.execute()
        keys = [k for k, s in zip(keys, statuses, strict=True) if s not in ("succeeded", "failed", "cancelled")]
        if keys and time.monotonic() > deadline:
            raise TimeoutError(f"{len(keys)} runs not finished after {TIMEOUT:g}s")
        time.sleep(0.1)


def run_many(ours: Ours, count: int) -> Round:
    workflow = ours.workflow(workflow_data())
    started = time.time()
    run_ids = [ours.coordinator.submit(workflow).run_id for _ in range(count)]
    submitted = time.time()
    wait_all(ours, run_ids)
    records = [ours.store.runs.get(r) for r in run_ids]
    failed = [r.run_id for r in records if r.status.value != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} runs did not succeed, e.g. {failed[0]}")
    end = max(timestamp(r.finished_at) for r in records)
    result = Round(count, submitted - started, end - started)
    for record in records:
        result.lags += lags(record)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --runs (quick runs: 0.1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes of the worker node")
    parser.add_argument("--keep", action="store_true", help="keep worker logs")
    args = parser.parse_args(argv)
    count = max(2, round(args.runs * args.scale))
    out = console()
    many: list[Round] = []
    alone: list[Round] = []
    with Processes(keep=args.keep) as processes:
        ours = Ours(processes)
        ours.worker("ours", args.concurrency)
        run_many(ours, 2)
        for n in range(args.rounds):
            with out.status(f"round {n + 1}/{args.rounds}: {count:,} runs at once"):
                many.append(run_many(ours, count))
            with out.status(f"round {n + 1}/{args.rounds}: runs alone"):
                for _ in range(ALONE):
                    alone.append(run_many(ours, 1))
        ours.close()

    alone_lags = [lag for r in alone for lag in r.lags]
    many_p99 = median([percentile(r.lags, 99) for r in many])
    many_median = median([median(r.lags) for r in many])
    alone_p99, alone_median = percentile(alone_lags, 99), median(alone_lags)
    alone_total = median([r.total_seconds for r in alone])
    table = Table(
        title=f"{count:,} concurrent runs of a {LENGTH}-step chain vs one alone, 1 node x {args.concurrency} "
        f"prefork, median of {args.rounds} rounds"
    )
    for column in ("", "total s", "submit s", "steps/s", "lag median ms", "lag p99 ms", "p99 / alone"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(
        f"{count:,} runs at once",
        f"{median([r.total_seconds for r in many]):.2f}",
        f"{median([r.submit_seconds for r in many]):.2f}",
        f"{median([r.summary()['steps_per_second'] for r in many]):,.0f}",
        ms(many_median),
        ms(many_p99),
        ratio(many_p99 / alone_p99),
    )
    table.add_row(
        f"one run alone (x {len(alone)})", f"{alone_total:.3f}", "", f"{LENGTH / alone_total:,.0f}",
        ms(alone_median), ms(alone_p99), "1.00",
    )  # fmt: skip
    out.print(table)
    path = write(
        "runs",
        argv if argv is not None else sys.argv[1:],
        {
            "runs": count,
            "length": LENGTH,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "concurrent": [r.summary() for r in many],
            "alone": {
                "runs": len(alone),
                "total_seconds_median": alone_total,
                "lag_median": alone_median,
                "lag_p99": alone_p99,
            },
            "ratios": {
                "p99 lag concurrent/alone": many_p99 / alone_p99,
                "median lag concurrent/alone": many_median / alone_median,
            },
        },
        [],
    )
    out.print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
