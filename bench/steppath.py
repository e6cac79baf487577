"""The step path in one process: what a pool process does for each delivery, counted exactly.

Run from the repository root::

    python3 -m bench.steppath                           # thread CPU per step, 3 rounds
    python3 -m bench.steppath --callgrind               # instructions per step (valgrind)
    python3 -m bench.steppath --callgrind --against dbc541d   # the same at another commit, side by side

A workflow of ``--chains`` chains of 100 no-op steps is submitted to a private Redis, and this
process then plays the worker: it pops each message from the queue (as kombu's Redis transport
stores it), decodes its envelope and body, and hands the step message to
:meth:`~orchestrator.engine.runner.StepRunner.run` of a worker runtime built as
``celery worker`` builds it (``workers.app.create_app``, ``ORCH_TASK_MODULES=bench.tasks``): the
claim, the user task (``bench.noop``), the completion that pushes the dependent's message. What
this leaves out is the same for every version of the project: Celery's tracer, the prefork
pipe, kombu's delivery and ack (``bench.throughput`` has them all).

On a 2-core machine shared with other work, CPU seconds move by 10% from one run to the next.
``--callgrind`` runs the measurement under ``valgrind --tool=callgrind`` with instrumentation on
only around the measured steps (``callgrind_control``): instructions are the same from one run
to the next within about 1%, whatever else the machine is doing, so a change of a few percent
in the step path shows. ``--against REV`` measures a checkout of ``REV`` (a ``git worktree`` in a
temporary directory, removed afterwards) in the same run and reports ours / that.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.processes import ROOT, Processes
from bench.report import console, median, ratio, write

STEPS_PER_CHAIN = 100
WARM_UP = 50
"""Steps run before the measurement: plan cache, script loading, the first connections."""
_TOTAL = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)


def measure(redis_url: str, chains: int, rounds: int, *, callgrind: bool) -> dict[str, Any]:
    """Submit the workflow and run its steps in this process; CPU (and instructions) per step."""
    import bench.tasks  # noqa: F401  (registers bench.noop before the app is finalized)
    from bench.throughput import chains_workflow
    from config import Settings
    from orchestrator.definition.loader import build_workflow
    from orchestrator.engine.unit import StepMessage
    from workers.app import create_app
    from workers.runtime import runtime_of

    settings = Settings(broker_url=redis_url, store_url=redis_url, key_prefix="steppath", task_modules=["bench.tasks"])
    app = create_app(settings)
    app.loader.import_default_modules()
    app.finalize()
    runtime = runtime_of(app)
    redis = runtime.redis
    lists = runtime.keys.queue_lists(settings.defaults.queue)
    run = runtime.coordinator.submit(build_workflow(chains_workflow(chains, STEPS_PER_CHAIN)))

    def step() -> bool:
        raw = next((r for r in (redis.rpop(name) for name in lists) if r), None)
        if raw is None:
            return False
        envelope = json.loads(str(raw))
        _, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
        runtime.runner.run(StepMessage.model_validate(kwargs), envelope["headers"]["id"], "steppath@bench")
        return True

    for _ in range(WARM_UP):
        step()
    per_round = (chains * STEPS_PER_CHAIN - WARM_UP) // rounds
    if callgrind:
        _instrument("on")
    cpu: list[float] = []
    done = 0
    for _ in range(rounds):
        started = time.thread_time()
        count = 0
        while count < per_round and step():
            count += 1
        cpu.append((time.thread_time() - started) / max(count, 1) * 1e6)
        done += count
    if callgrind:
        _instrument("off")
    while step():
        pass
    status = redis.hget(runtime.keys.run(run.run_id), "status")
    if status != "succeeded":
        raise RuntimeError(f"run {run.run_id} {status!r}")
    app.close()
    return {"steps": done, "cpu_usec_per_step": cpu}


def _instrument(state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True, capture_output=True)


def run_in(tree: Path, chains: int, rounds: int, *, callgrind: bool) -> dict[str, Any]:
    """``measure`` in a child process on the code of ``tree`` (under callgrind when asked)."""
    with Processes() as processes, tempfile.TemporaryDirectory(prefix="steppath-") as tmp:
        out = Path(tmp) / "callgrind.out"
        result = Path(tmp) / "result.json"
        # This file runs on the other tree's code (which may not have it): by path, with the tree first.
        options = ["--inner", processes.redis.url(), str(result), "--chains", str(chains), "--rounds", str(rounds)]
        options += ["--callgrind"] if callgrind else []
        run = f"import runpy, sys; sys.argv = {[__file__, *options]!r}; "
        inner = [sys.executable, "-c", run + f"runpy.run_path({__file__!r}, run_name='__main__')"]
        if callgrind:
            inner = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *inner]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run(inner, cwd=tree, env=env, check=True, capture_output=True)
        measured: dict[str, Any] = json.loads(result.read_text())
        if callgrind:
            match = _TOTAL.search(out.read_text())
            assert match is not None, "callgrind wrote no total"
            measured["instructions_per_step"] = int(match.group(1)) / measured["steps"]
        return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, help="chains of 100 steps (default 20; 3 with --callgrind)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callgrind", action="store_true", help="count instructions under valgrind too")
    parser.add_argument("--against", metavar="REV", help="also measure this git revision, side by side")
    parser.add_argument("--inner", nargs=2, metavar=("REDIS_URL", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        url, result = args.inner
        args.chains = args.chains or 3
        Path(result).write_text(json.dumps(measure(url, args.chains, args.rounds, callgrind=args.callgrind)))
        return 0
    if args.callgrind and shutil.which("valgrind") is None:
        parser.error("--callgrind needs valgrind (Debian's package valgrind)")
    args.chains = args.chains or (3 if args.callgrind else 20)  # valgrind runs Python about 50x slower

    systems: dict[str, dict[str, Any]] = {"ours": run_in(ROOT, args.chains, args.rounds, callgrind=args.callgrind)}
    if args.against:
        tree = Path(tempfile.mkdtemp(prefix="steppath-rev-"))
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.against], cwd=ROOT, check=True)
        try:
            systems[args.against] = run_in(tree, args.chains, args.rounds, callgrind=args.callgrind)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)

    out = console()
    table = Table(title=f"the step path in one process: {args.chains} chains x {STEPS_PER_CHAIN} no-op steps")
    for column in ("code", "steps", "thread CPU µs/step (each round)", "median", "instructions/step", "ours / this"):
        table.add_column(column, justify="left" if column == "code" else "right")
    # The ratio is of instructions when they were counted (repeatable), else of the CPU medians.
    part = "instructions_per_step" if args.callgrind else "cpu_median_usec_per_step"
    for measured in systems.values():
        measured["cpu_median_usec_per_step"] = median(measured["cpu_usec_per_step"])
    for name, measured in systems.items():
        measured["ours/this"] = float(systems["ours"][part]) / float(measured[part])
        table.add_row(
            name,
            str(measured["steps"]),
            " ".join(f"{c:,.0f}" for c in measured["cpu_usec_per_step"]),
            f"{measured['cpu_median_usec_per_step']:,.0f}",
            f"{measured['instructions_per_step']:,.0f}" if args.callgrind else "",
            ratio(measured["ours/this"]),
        )
    out.print(table)
    document = {"chains": args.chains, "systems": systems}
    path = write("steppath", argv if argv is not None else sys.argv[1:], document, [])
    out.print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
