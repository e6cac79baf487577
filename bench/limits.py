"""The physical limit on this machine: Redis operations per second, a bare queue loop, and where
our system and plain Celery sit against them.

Run from the repository root::

    python3 -m bench.limits                 # 3 rounds; throughput of 20 chains x 100 steps
    python3 -m bench.limits --scale 0.25    # 5 chains x 100: a quick run

On the benchmark's private Redis server (nothing else uses it):

- ``redis-benchmark`` (the redis-tools binary), ``PING``/``SET``/``LPUSH``/``RPOP``: one client
  without pipelining (every command a round trip: what one Python process waiting for each reply
  can at best get), 50 clients without pipelining, and 50 clients with 16 commands per pipeline;
- redis-py from Python, one process: ``PING`` one at a time, and ``INCR`` in pipelines of 100;
- the bare loop: ``BRPOP`` a 600-byte message from a list and ``LPUSH`` it back, as a worker
  takes a step and publishes the next one, with nothing else (no ack, no state): one process
  with one message circulating, and two processes (the core count) with one message each on the
  same list. Each loop step is two round trips;
- in the same run, alternating with the loops round by round: our no-op steps per second on one
  worker node (prefork ``--concurrency``) over ``--chains`` chains of 100, and plain Celery's
  flat tasks and ``celery.chain`` s of the same count (``bench.throughput``'s shapes).

The table gives each system's steps/s as a share of the bare loop's. There is no target.
"""

from __future__ import annotations

import argparse
import csv
import io
import multiprocessing
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from rich.table import Table

from bench import throughput
from bench.processes import Processes
from bench.report import console, median, ratio, write
from bench.systems import add_common_arguments, start

LOOP_SECONDS = 3.0
PAYLOAD = b"x" * 600
LOOP_DB = 9
BENCHMARK_RUNS = {
    "1 client": ["-c", "1", "-n", "20000"],
    "50 clients": ["-c", "50", "-n", "100000"],
    "50 clients, pipeline 16": ["-c", "50", "-n", "400000", "-P", "16"],
}


@dataclass
class Series:
    name: str
    unit: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median(self.values)


def redis_benchmark(port: int) -> dict[str, dict[str, float]]:
    """``redis-benchmark --csv`` per configuration: requests/s by test."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return {}
    found: dict[str, dict[str, float]] = {}
    for name, options in BENCHMARK_RUNS.items():
        command = [binary, "-p", str(port), "--csv", "-q", "-t", "ping,set,lpush,rpop", *options]
        output = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
        found[name] = {row["test"]: float(row["rps"]) for row in csv.DictReader(io.StringIO(output))}
    return found


def python_ping(port: int, seconds: float = LOOP_SECONDS) -> float:
    client = Redis(port=port, db=LOOP_DB)
    done, deadline = 0, time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < deadline:
        for _ in range(100):
            client.ping()
        done += 100
    return done / (time.monotonic() - start)


def python_pipelined(port: int, seconds: float = LOOP_SECONDS, size: int = 100) -> float:
    client = Redis(port=port, db=LOOP_DB)
    done, deadline = 0, time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < deadline:
        pipe = client.pipeline(transaction=False)
        for _ in range(size):
            pipe.incr("limits:counter")
        pipe.execute()
        done += size
    return done / (time.monotonic() - start)


def _loop(port: int, key: str, seconds: float, results: Any) -> None:
    client = Redis(port=port, db=LOOP_DB)
    client.lpush(key, PAYLOAD)
    done, deadline = 0, time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < deadline:
        popped = client.brpop([key], timeout=5)
        if popped is None:  # another process holds the message longer than the timeout: pop again
            continue
        client.lpush(key, popped[1])
        done += 1
    results.put(done / (time.monotonic() - start))
    client.brpop([key], timeout=5)  # take this process's message out again


def bare_loop(port: int, processes: int, seconds: float = LOOP_SECONDS) -> float:
    """Steps/s of ``processes`` processes each doing ``BRPOP`` + ``LPUSH`` on one list."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_loop, args=(port, "limits:queue", seconds, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    total = sum(results.get(timeout=seconds + 30) for _ in workers)
    for worker in workers:
        worker.join(30)
    return float(total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chains", type=int, default=20, help="chains of 100 steps for the systems' throughput")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --chains (quick runs: 0.25)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    chains = max(1, round(args.chains * args.scale))
    length = 100
    steps = chains * length
    out = console()

    ping = Series("redis-py PING, one at a time", "ops/s")
    piped = Series("redis-py INCR, pipelines of 100", "ops/s")
    loop1 = Series("bare loop BRPOP + LPUSH, 1 process", "steps/s")
    loop2 = Series("bare loop BRPOP + LPUSH, 2 processes", "steps/s")
    ours_s = Series(f"ours, {chains} chains x {length}", "steps/s")
    flat_s = Series(f"plain flat, {steps:,} tasks", "steps/s")
    chains_s = Series(f"plain celery.chain, {chains} x {length}", "steps/s")
    benchmarks: list[dict[str, dict[str, float]]] = []
    with Processes(keep=args.keep) as processes:
        port = processes.redis.port
        ours, plain = start(processes, args.concurrency)
        with out.status("warming up..."):
            throughput.run_ours(ours, throughput.chains_workflow(2, 20))
            throughput.run_plain_chains(plain, 2, 20)
            throughput.run_plain_flat(plain, 40)
        for n in range(args.rounds):
            with out.status(f"round {n + 1}/{args.rounds}: redis-benchmark"):
                benchmarks.append(redis_benchmark(port))
            with out.status(f"round {n + 1}/{args.rounds}: Python loops"):
                ping.values.append(python_ping(port))
                piped.values.append(python_pipelined(port))
                loop1.values.append(bare_loop(port, 1))
                loop2.values.append(bare_loop(port, 2))
            with out.status(f"round {n + 1}/{args.rounds}: systems"):
                ours_s.values.append(steps / throughput.run_ours(ours, throughput.chains_workflow(chains, length)))
                flat_s.values.append(steps / throughput.run_plain_flat(plain, steps))
                chains_s.values.append(steps / throughput.run_plain_chains(plain, chains, length))
        ours.close()
        plain.close()

    redis_table = Table(title=f"redis-benchmark on this machine, requests/s (median of {args.rounds} rounds)")
    tests = ("PING_INLINE", "PING_MBULK", "SET", "LPUSH", "RPOP")
    redis_table.add_column("configuration")
    for test in tests:
        redis_table.add_column(test, justify="right")
    medians: dict[str, dict[str, float]] = {}
    for name in BENCHMARK_RUNS:
        medians[name] = {t: median([b[name][t] for b in benchmarks if name in b and t in b[name]]) for t in tests}
        redis_table.add_row(name, *(f"{medians[name][t]:,.0f}" for t in tests))
    if not any(benchmarks):
        out.print("redis-benchmark is not installed (the redis-tools package): its rows are missing")
    out.print(redis_table)

    table = Table(title=f"where each system sits, median of {args.rounds} rounds (1 node x {args.concurrency} prefork)")
    for column in ("measure", "median", "unit", "/ bare loop, 1 process", "/ bare loop, 2 processes"):
        table.add_column(column, justify="left" if column in ("measure", "unit") else "right")
    for series in (ping, piped, loop1, loop2, ours_s, flat_s, chains_s):
        shares = ("", "")
        if series.unit == "steps/s":
            shares = (ratio(series.median / loop1.median), ratio(series.median / loop2.median))
        table.add_row(series.name, f"{series.median:,.0f}", series.unit, *shares)
    out.print(table)
    path = write(
        "limits",
        argv if argv is not None else sys.argv[1:],
        {
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "steps": steps,
            "redis_benchmark": {"median_rps": medians, "rounds": benchmarks},
            "series": [
                {"name": s.name, "unit": s.unit, "values": s.values, "median": s.median}
                for s in (ping, piped, loop1, loop2, ours_s, flat_s, chains_s)
            ],
            "ratios": {
                "ours/bare_loop_1": ours_s.median / loop1.median,
                "ours/bare_loop_2": ours_s.median / loop2.median,
                "plain_flat/bare_loop_2": flat_s.median / loop2.median,
                "plain_chains/bare_loop_2": chains_s.median / loop2.median,
                "ours/plain_flat": ours_s.median / flat_s.median,
                "ours/plain_chains": ours_s.median / chains_s.median,
            },
        },
        [],
    )
    out.print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
