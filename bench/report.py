"""Statistics, tables and result files shared by the benchmarks."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


def console() -> Console:
    found = Console(stderr=False)
    if not found.is_terminal:  # a pipe or a file: do not squeeze the table into 80 columns
        found = Console(width=150)
    return found


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def ratio(value: float) -> str:
    return "n/a" if math.isnan(value) or math.isinf(value) else f"{value:.2f}"


@dataclass(frozen=True)
class Target:
    """A target of the issue and whether this run met it."""

    name: str
    goal: str
    value: float
    met: bool

    def row(self) -> list[str]:
        mark = "[green]met[/green]" if self.met else "[red]missed[/red]"
        return [self.name, self.goal, ratio(self.value), mark]


def targets_table(targets: Sequence[Target]) -> Table:
    table = Table(title="targets")
    for column in ("target", "goal", "measured", ""):
        table.add_column(column)
    for target in targets:
        table.add_row(*target.row())
    return table


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how busy the machine was."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def write(
    name: str, argv: Sequence[str], document: dict[str, Any], targets: Sequence[Target], output: Path | None = None
) -> Path:
    """Write ``bench/results/{name}.json`` with the machine, the exact command and the targets."""
    path = output or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python3", "-m", f"bench.{name}", *argv]),
        "machine": machine(),
        **document,
        "targets": [asdict(t) for t in targets],
    }
    path.write_text(json.dumps(_finite(full), indent=2) + "\n")
    return path


def _finite(value: Any) -> Any:
    """NaN and infinities as null: JSON has neither."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
