"""Peer: the same two workflows on our system, plain Celery canvas and celery-director.

Run from the repository root (celery-director needs its own virtualenv, since it pins Celery 5.5)::

    python3 -m venv /tmp/director-venv && /tmp/director-venv/bin/pip install celery-director
    python3 -m bench.peer                       # 3 rounds
    python3 -m bench.peer --no-director         # ours and plain Celery only

Workflows, every task a no-op:

- ``chain``: 50 steps in a row;
- ``fan``: ``start`` -> 200 parallel steps -> ``end``.

Time from submitting to the end of the last step: ours, ``finished_at`` of the run record;
plain Celery, ``celery.chain`` (the fan is ``chain(start, group(200), end)``, which Celery turns
into a chord) with each task recording when its body returned; celery-director, ``updated_at``
of its last task row (director's own closing task, which sleeps 0.5 s before it marks the
workflow done, is reported separately). Each system has one worker node with the same prefork
pool size and the same reliability settings (director's worker is given ``acks_late`` and
prefetch 1, see ``bench/director_app.py``); all three use the benchmark's private Redis (separate
databases) and director uses a database of its own on the machine's PostgreSQL
(``--postgres``), created and dropped by the benchmark. No numeric target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import chain, group
from rich.console import Console
from rich.table import Table

from bench.processes import ROOT, Processes, Worker
from bench.report import console, median, ratio, write
from bench.systems import Ours, Plain, timestamp

TIMEOUT = 300.0
DIRECTOR_VENV = Path("/tmp/director-venv")
DIRECTOR_BROKER_DB, DIRECTOR_BACKEND_DB = 3, 4
CHAIN, FAN = 50, 200
WORKFLOWS = ("chain", "fan")


@dataclass
class Series:
    system: str
    workflow: str
    seconds: list[float] = field(default_factory=list)
    extra: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median(self.seconds)


# --- ours and plain Celery --------------------------------------------------------------------


def ours_workflow(kind: str) -> dict[str, Any]:
    steps: dict[str, Any]
    if kind == "chain":
        steps = {f"s{i}": {"task": "bench.noop", "needs": [f"s{i - 1}"] if i else []} for i in range(CHAIN)}
    else:
        steps = {"start": {"task": "bench.noop"}}
        steps.update({f"p{i}": {"task": "bench.noop", "needs": ["start"]} for i in range(FAN)})
        steps["end"] = {"task": "bench.noop", "needs": [f"p{i}" for i in range(FAN)]}
    return {"workflow": f"peer-{kind}", "steps": steps}


def run_ours(ours: Ours, kind: str) -> float:
    started, record = ours.run(ours_workflow(kind), TIMEOUT)
    return timestamp(record.finished_at) - started


def run_plain(plain: Plain, kind: str) -> float:
    timed, timed_stored = plain.task("plain.timed"), plain.task("plain.timed_stored")
    key = f"peer:{uuid.uuid4().hex}"
    if kind == "chain":
        canvas, last = chain(timed.si(key=key, i=i) for i in range(CHAIN)), CHAIN - 1
    else:
        last = FAN + 1
        canvas = chain(
            timed.si(key=key, i=0),
            group(timed_stored.si(key=key, i=i) for i in range(1, FAN + 1)),
            timed.si(key=key, i=last),
        )
    started = time.time()
    canvas.apply_async()
    deadline = time.monotonic() + TIMEOUT
    while (end := plain.redis.hget(f"{key}:end", str(last))) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"plain {kind} not done after {TIMEOUT:g}s")
        time.sleep(0.02)
    return float(end) - started


# --- celery-director --------------------------------------------------------------------------

DIRECTOR_TASKS = """from director import task


@task(name="NOOP")
def noop(*args, **kwargs):
    return None
"""


class Director:
    """celery-director in its own virtualenv, on a PostgreSQL database created for the run."""

    def __init__(self, processes: Processes, venv: Path, postgres: str) -> None:
        self.processes = processes
        self.python = str(venv / "bin" / "python")
        self.postgres = postgres
        self.database = f"bench_director_{os.getpid()}"
        self.home = processes.tmp / "director-home"
        (self.home / "tasks").mkdir(parents=True)
        (self.home / "tasks" / "bench.py").write_text(DIRECTOR_TASKS)
        workflows = {
            "bench.chain": {"tasks": ["NOOP"] * CHAIN},
            "bench.fan": {"tasks": ["NOOP", {"PARALLEL": {"type": "group", "tasks": ["NOOP"] * FAN}}, "NOOP"]},
        }
        (self.home / "workflows.yml").write_text(json.dumps(workflows))  # YAML accepts JSON
        # Only bench/ on its path: our own top-level packages (config, workers) stay out of its way.
        self.path = processes.tmp / "director-path"
        self.path.mkdir()
        (self.path / "bench").symlink_to(ROOT / "bench")
        self.env = {
            "DIRECTOR_HOME": str(self.home),
            "DIRECTOR_DATABASE_URI": f"{postgres}/{self.database}",
            "DIRECTOR_BROKER_URI": processes.redis.url(DIRECTOR_BROKER_DB),
            "DIRECTOR_RESULT_BACKEND_URI": processes.redis.url(DIRECTOR_BACKEND_DB),
            "DIRECTOR_ENABLE_CDN": "false",
            "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
        }
        self.created = False

    def _environ(self) -> dict[str, str]:
        return {**{k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "DIRECTOR_"))}, **self.env}

    def create_database(self) -> None:
        self._psql(f'CREATE DATABASE "{self.database}"')
        self.created = True
        subprocess.run(
            [str(Path(self.python).parent / "director"), "db", "upgrade"],
            cwd=self.home,
            env=self._environ(),
            check=True,
            capture_output=True,
        )

    def drop_database(self) -> None:
        if self.created:
            self._psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self.created = False

    def _psql(self, sql: str) -> None:
        subprocess.run(["psql", f"{self.postgres}/postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)

    def worker(self, name: str, concurrency: int, wait: bool = True) -> Worker:
        return self.processes.worker(
            name,
            "bench.director_app:cel",
            self.env,
            concurrency=concurrency,
            python=self.python,
            cwd=self.path,
            wait=wait,
        )

    def run(self, kind: str) -> tuple[float, float]:
        """Seconds to the last user task's end and to the workflow's end."""
        done = subprocess.run(
            [self.python, str(ROOT / "bench" / "director_driver.py"), f"bench.{kind}", str(TIMEOUT)],
            cwd=self.home,
            env=self._environ(),
            check=True,
            capture_output=True,
            text=True,
        )
        found = json.loads(done.stdout.strip().splitlines()[-1])
        if found["status"] != "success" or found["tasks_succeeded"] != found["tasks"]:
            raise RuntimeError(f"director workflow bench.{kind}: {found}")
        return found["last_task_end"] - found["started"], found["workflow_end"] - found["started"]


def director_problem(venv: Path) -> str | None:
    """Why celery-director cannot run here, or None."""
    python = venv / "bin" / "python"
    if not python.exists():
        return f"no virtualenv at {venv}: python3 -m venv {venv} && {venv}/bin/pip install celery-director"
    probe = subprocess.run([str(python), "-c", "import director"], capture_output=True, text=True)
    if probe.returncode:
        return f"{python} -c 'import director' failed: {probe.stderr.strip().splitlines()[-1:]}"
    return None


Key = tuple[str, str]


def failure(exc: BaseException) -> str:
    """The error text of a failed director set-up step, for the report."""
    stderr = getattr(exc, "stderr", None) or b""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else str(stderr)
    return f"{exc}: {text[-500:]}".strip()


# --- main -------------------------------------------------------------------------------------


def measure(args: argparse.Namespace, problem: str | None, out: Console) -> tuple[dict[Key, Series], str | None]:
    """Run every round; returns the series and why director was not measured (None if it was)."""
    series = {(s, w): Series(s, w) for s in ("ours", "plain", "director") for w in WORKFLOWS}
    with Processes(keep=args.keep) as processes:
        ours, plain = Ours(processes), Plain(processes)
        director = Director(processes, args.director_venv, args.postgres) if problem is None else None
        try:
            ours.worker("ours", args.concurrency, wait=False)
            plain.worker("plain", args.concurrency, wait=False)
            if director is not None:
                try:
                    director.create_database()
                    director.worker("director", args.concurrency, wait=False)
                except (subprocess.CalledProcessError, OSError) as exc:
                    problem, director = failure(exc), None
            for worker in processes.workers:
                worker.wait_ready()
            with out.status("warming up..."):
                for kind in WORKFLOWS:
                    run_ours(ours, kind)
                    run_plain(plain, kind)
                    if director is not None:
                        director.run(kind)
            for n in range(args.rounds):
                for kind in WORKFLOWS:
                    with out.status(f"round {n + 1}/{args.rounds}: {kind}"):
                        series["ours", kind].seconds.append(run_ours(ours, kind))
                        series["plain", kind].seconds.append(run_plain(plain, kind))
                        if director is not None:
                            last_task, closed = director.run(kind)
                            series["director", kind].seconds.append(last_task)
                            series["director", kind].extra.append(closed)
        finally:
            for worker in processes.workers:
                worker.stop()
            if director is not None:
                director.drop_database()
            ours.close()
            plain.close()
    return series, problem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="accepted for uniformity; the workflows are fixed")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes per worker node")
    parser.add_argument("--director-venv", type=Path, default=DIRECTOR_VENV)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432", help="server URL, no database")
    parser.add_argument("--no-director", dest="director", action="store_false")
    parser.add_argument("--keep", action="store_true", help="keep worker logs")
    args = parser.parse_args(argv)
    out = console()

    problem = director_problem(args.director_venv) if args.director else "skipped (--no-director)"
    series, problem = measure(args, problem, out)

    table = Table(title=f"peer: seconds from submit to the last step's end, median of {args.rounds} rounds")
    for column in ("workflow", "ours", "plain Celery", "celery-director", "ours / plain", "ours / director"):
        table.add_column(column, justify="left" if column == "workflow" else "right")
    labels = {"chain": f"{CHAIN}-step chain", "fan": f"start -> {FAN} parallel -> end"}
    for kind in WORKFLOWS:
        o, p, d = (series[s, kind] for s in ("ours", "plain", "director"))
        director_cell = f"{d.median:.2f} (closed {median(d.extra):.2f})" if d.seconds else "n/a"
        table.add_row(
            labels[kind],
            f"{o.median:.2f}",
            f"{p.median:.2f}",
            director_cell,
            ratio(o.median / p.median),
            ratio(o.median / d.median) if d.seconds else "n/a",
        )
    out.print(table)
    if problem is not None:
        out.print(f"celery-director not measured: {problem}")
    path = write(
        "peer",
        argv if argv is not None else sys.argv[1:],
        {
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "director_problem": problem,
            "series": [
                {"system": s.system, "workflow": s.workflow, "seconds": s.seconds, "median": s.median}
                | ({"workflow_closed_seconds": s.extra} if s.extra else {})
                for s in series.values()
            ],
            "ratios": {
                f"{kind} ours/{other}": series["ours", kind].median / series[other, kind].median
                for kind in WORKFLOWS
                for other in ("plain", "director")
                if series[other, kind].seconds
            },
        },
        [],
    )
    out.print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
