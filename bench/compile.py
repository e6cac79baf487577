"""How long validating, compiling and reporting a 10,000-step workflow takes, per DAG shape.

Run from the repository root::

    python bench/compile.py                      # every shape, best of 3, with peak memory
    python bench/compile.py --shapes chain fan --repeat 5 --no-memory

Each shape is built in Python as a :class:`Workflow`. Three phases are timed separately, each the
best of ``--repeat`` runs (``time.perf_counter``, garbage collector on, as in production):

- ``validate``: ``build_workflow`` on the workflow as plain data, i.e. every check the loader runs
  on a file (without the YAML parsing);
- ``compile``: ``compile_workflow``;
- ``report``: ``report``, the analysis ``orchestrator plan`` prints.

Peak memory is measured in a separate run of each phase under ``tracemalloc`` (which slows
allocation down, so it never overlaps the timings). Results are printed as a table and written to
``bench/results/compile.json``. The exit status is 1 when compiling any shape takes a second or
more: the budget the issue sets ("well under a second").
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from orchestrator.analysis.canvas import Prime, decompose, walk
from orchestrator.analysis.report import report
from orchestrator.definition.graph import Dag
from orchestrator.definition.loader import build_workflow
from orchestrator.definition.models import Step, Workflow
from orchestrator.plan.compiler import compile_workflow

RESULTS = Path(__file__).parent / "results" / "compile.json"
COMPILE_BUDGET = 1.0
"""Seconds; compiling any shape must take less."""

Needs = dict[str, tuple[str, ...]]


# --- shapes -------------------------------------------------------------------------------------


def chain(n: int, rnd: random.Random) -> Needs:
    """s0 -> s1 -> ... : the deepest DAG, and the worst case for anything quadratic in depth."""
    return {f"s{i}": (f"s{i - 1}",) if i else () for i in range(n)}


def fan(n: int, rnd: random.Random) -> Needs:
    """One source, n - 2 parallel steps, one sink that needs them all: the widest DAG."""
    needs: Needs = {"source": ()}
    needs.update({f"w{i}": ("source",) for i in range(n - 2)})
    needs["sink"] = tuple(f"w{i}" for i in range(n - 2))
    return needs


def layered(n: int, rnd: random.Random, width: int = 100, degree: int = 3) -> Needs:
    """Layers of ``width`` steps; each step needs ``degree`` random steps of the layer above."""
    names = [f"s{i}" for i in range(n)]
    needs: Needs = {}
    for i, name in enumerate(names):
        layer = i // width
        above = names[(layer - 1) * width : layer * width] if layer else []
        needs[name] = tuple(rnd.sample(above, min(degree, len(above))))
    return needs


def random_dag(n: int, rnd: random.Random, window: int = 50, degree: int = 3) -> Needs:
    """Each step needs up to ``degree`` random steps among the ``window`` before it: not
    series-parallel (most of it is one block joined at run time)."""
    names = [f"s{i}" for i in range(n)]
    return {name: tuple(rnd.sample(names[max(0, i - window) : i], min(i, degree))) for i, name in enumerate(names)}


def series_parallel(n: int, rnd: random.Random) -> Needs:
    """Random nesting of chains of groups of chains (2-4 parts each, random sizes): series-parallel,
    so the canvas is exact; about 20 levels deep at 10,000 steps."""
    needs: dict[str, list[str]] = {}
    # (size, series?, index of the slot the result goes to); results are (sources, sinks).
    results: list[tuple[list[str], list[str]]] = []
    todo: list[tuple[int, bool, int]] = [(n, True, 0)]
    results.append(([], []))
    built: list[tuple[bool, list[int], int]] = []  # composites to assemble, children first
    while todo:
        size, series, slot = todo.pop()
        if size == 1:
            name = f"s{len(needs)}"
            needs[name] = []
            results[slot] = ([name], [name])
            continue
        k = min(size, rnd.randint(2, 4))
        cuts = sorted(rnd.sample(range(1, size), k - 1))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, size], strict=True)]
        slots = list(range(len(results), len(results) + k))
        results.extend(([], []) for _ in sizes)
        built.append((series, slots, slot))
        todo.extend((s, not series, child) for s, child in zip(sizes, slots, strict=True))
    for series, slots, slot in reversed(built):
        parts = [results[s] for s in slots]
        if series:
            for (_, sinks), (sources, _) in zip(parts, parts[1:], strict=False):
                for source in sources:
                    needs[source].extend(sinks)
            results[slot] = (parts[0][0], parts[-1][1])
        else:
            results[slot] = ([x for p in parts for x in p[0]], [x for p in parts for x in p[1]])
    return {name: tuple(ns) for name, ns in needs.items()}


def nested(n: int, rnd: random.Random) -> Needs:
    """G(k) = x(k) ; (G(k-1) || y(k)) ; z(k): series-parallel nested n * 2/3 levels deep. The worst
    case of the decomposition, which costs O((steps + needs) * depth); not run unless asked for."""
    needs: dict[str, list[str]] = {"g0": []}
    source = sink = "g0"
    for k in range(1, (n - 1) // 3 + 1):
        needs[f"x{k}"] = []
        needs[source].insert(0, f"x{k}")
        needs[f"y{k}"] = [f"x{k}"]
        needs[f"z{k}"] = [sink, f"y{k}"]
        source, sink = f"x{k}", f"z{k}"
    return {name: tuple(ns) for name, ns in needs.items()}


SHAPES: dict[str, tuple[str, Callable[[int, random.Random], Needs]]] = {
    "chain": ("chain", chain),
    "fan": ("fan-out / fan-in", fan),
    "layered": ("random layered, 3 needs", layered),
    "random": ("random, not series-parallel", random_dag),
    "sp": ("random series-parallel", series_parallel),
    "nested": ("series-parallel nested 2n/3 deep (opt-in worst case)", nested),
}
DEFAULT_SHAPES = ["chain", "fan", "layered", "random", "sp"]


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Result:
    shape: str
    description: str
    steps: int
    needs: int
    runtime_joins: int
    series_parallel: bool
    seconds: dict[str, float]
    peak_mib: dict[str, float]


def best_of(repeat: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def peak_mib(run: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def measure(shape: str, steps: int, repeat: int, memory: bool, seed: int) -> Result:
    description, make = SHAPES[shape]
    needs = make(steps, random.Random(seed))
    workflow = Workflow(workflow="bench", steps={name: Step(task="bench.noop", needs=ns) for name, ns in needs.items()})
    data: dict[str, Any] = workflow.dump()
    plan = compile_workflow(workflow)
    phases: dict[str, Callable[[], object]] = {
        "validate": lambda: build_workflow(data),
        "compile": lambda: compile_workflow(workflow),
        "report": lambda: report(plan),
    }
    seconds = {phase: best_of(repeat, run) for phase, run in phases.items()}
    peaks = {phase: peak_mib(run) for phase, run in phases.items()} if memory else {}
    analysis = report(plan)
    return Result(
        shape=shape,
        description=description,
        steps=len(needs),
        needs=sum(len(ns) for ns in needs.values()),
        runtime_joins=len(analysis.runtime_joins),
        series_parallel=not any(isinstance(node, Prime) for node in walk(decompose(Dag(needs)))),
        seconds=seconds,
        peak_mib=peaks,
    )


def table(results: list[Result], repeat: int) -> Table:
    out = Table(title=f"{results[0].steps:,}-step workflows: best of {repeat}; peak memory from tracemalloc")
    out.add_column("shape")
    for column in ("steps", "needs", "runtime joins", "validate s", "compile s", "report s"):
        out.add_column(column, justify="right")
    if any(r.peak_mib for r in results):
        for phase in ("validate", "compile", "report"):
            out.add_column(f"{phase} MiB", justify="right")
    for r in results:
        row = [
            r.shape,
            f"{r.steps:,}",
            f"{r.needs:,}",
            f"{r.runtime_joins:,}",
            *(f"{r.seconds[p]:.3f}" for p in ("validate", "compile", "report")),
            *(f"{r.peak_mib[p]:.1f}" for p in ("validate", "compile", "report") if r.peak_mib),
        ]
        out.add_row(*row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--shapes",
        nargs="+",
        choices=list(SHAPES),
        default=DEFAULT_SHAPES,
        help="; ".join(f"{key}: {description}" for key, (description, _) in SHAPES.items()),
    )
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the tracemalloc runs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    console = Console()
    if not console.is_terminal:  # a pipe or a file: do not squeeze the table into 80 columns
        console = Console(width=150)
    results: list[Result] = []
    for shape in args.shapes:
        with console.status(f"{shape}..."):
            results.append(measure(shape, args.steps, args.repeat, args.memory, args.seed))
    console.print(table(results, args.repeat))

    args.output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "compile",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "repeat": args.repeat,
        "seed": args.seed,
        "compile_budget_seconds": COMPILE_BUDGET,
        "results": [asdict(r) for r in results],
    }
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"written to {args.output}")

    slow = [r.shape for r in results if r.seconds["compile"] >= COMPILE_BUDGET]
    if slow:
        console.print(f"[red]compile took {COMPILE_BUDGET:.0f}s or more for: {', '.join(slow)}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
