"""Run every benchmark in turn: ``python3 -m bench`` (what ``make bench`` does).

Each benchmark starts and stops its own Redis server and workers, prints its table and writes
``bench/results/NAME.json``; at the end a summary lists every target. ``--scale`` is passed to
each benchmark (``--scale 0.1`` for a quick run: sizes shrink, the recovery wait does not);
``--only`` picks benchmarks. The exit status is 1 when a benchmark failed or missed its target.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable

from rich.table import Table

from bench import (
    burst,
    cluster,
    commands,
    fanout,
    footprint,
    history,
    lag,
    limits,
    peer,
    profile,
    recovery,
    runs,
    throughput,
)
from bench import compile as compile_bench
from bench.report import RESULTS, console

BENCHMARKS: dict[str, Callable[[list[str]], int]] = {
    "compile": compile_bench.main,
    "throughput": throughput.main,
    "fanout": fanout.main,
    "lag": lag.main,
    "recovery": recovery.main,
    "peer": peer.main,
    "commands": commands.main,
    "limits": limits.main,
    "burst": burst.main,
    "runs": runs.main,
    "footprint": footprint.main,
    "history": history.main,
    "cluster": cluster.main,
    "profile": profile.main,
}


def arguments(name: str, scale: float) -> list[str]:
    if scale == 1.0:
        return []
    if name == "compile":  # its own size option
        return ["--steps", str(max(100, round(10_000 * scale))), "--repeat", "1", "--no-memory"]
    return ["--scale", str(scale)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    args = parser.parse_args(argv)
    out = console()
    statuses: dict[str, int] = {}
    for name in args.only:
        out.rule(name)
        try:
            statuses[name] = BENCHMARKS[name](arguments(name, args.scale))
        except Exception:
            traceback.print_exc()
            statuses[name] = 2
    summary = Table(title="benchmarks")
    for column in ("benchmark", "exit", "targets"):
        summary.add_column(column)
    for name, status in statuses.items():
        path = RESULTS / f"{name}.json"
        targets = json.loads(path.read_text()).get("targets", []) if path.exists() and status != 2 else []
        described = "; ".join(f"{t['goal']}: {t['value']:.2f} {'met' if t['met'] else 'MISSED'}" for t in targets)
        summary.add_row(name, {0: "ok", 1: "target missed", 2: "failed"}.get(status, str(status)), described)
    out.print(summary)
    return 0 if all(s == 0 for s in statuses.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
