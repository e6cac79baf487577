"""Recovery: from SIGKILL of a worker node to its steps running on another node.

Run from the repository root::

    python3 -m bench.recovery                        # visibility timeout 60 s, cap 180 s
    python3 -m bench.recovery --cap 90               # quicker; plain Celery may show "> 90 s"

For each system: node A (``--concurrency`` prefork processes) starts ``--concurrency`` long steps
(they sleep for 10 minutes), node B is started and ready, then node A's whole process group is
SIGKILLed. The figure is the time from the kill to each step starting again on node B (ours:
the step's ``started_at`` and ``worker`` in the run record; plain Celery: ``task_prerun`` on
node B), the first and the last of the steps.

- **Ours** runs with its defaults: leases of ``ORCH_WORKER__LEASE`` (15 s, renewed every 5 s)
  and a sweep every ``ORCH_WORKER__SWEEP_INTERVAL`` (2 s) on every worker: a dead node's steps
  are re-dispatched once its leases expire.
- **Plain Celery** (``acks_late``, ``reject_on_worker_lost``, prefetch 1) with kombu's defaults
  except the visibility timeout, ``--visibility-timeout`` (60 s; Celery's default is 3,600 s): a
  message a dead node had taken is restored to the queue by another consumer's
  ``restore_visible`` once it is older than the visibility timeout, on kombu's restore cadence.

A step not running again after ``--cap`` seconds is reported as "> cap". There is no numeric
target; recovery must happen at all, and the issue expects ours to beat the visibility timeout.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from bench.processes import Processes, Worker
from bench.report import Target, console, ratio, targets_table, write
from bench.systems import Ours, Plain, timestamp


@dataclass
class Recovery:
    name: str
    settings: str
    seconds: list[float] = field(default_factory=list)
    steps: int = 0

    @property
    def first(self) -> float:
        return min(self.seconds) if self.seconds else math.inf

    @property
    def last(self) -> float:
        return max(self.seconds) if len(self.seconds) == self.steps else math.inf


def cell(seconds: float, cap: float) -> str:
    return f"> {cap:g}" if math.isinf(seconds) else f"{seconds:.1f}"


def wait_until(condition: Any, timeout: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def recover_ours(processes: Processes, concurrency: int, cap: float) -> Recovery:
    ours = Ours(processes, prefix="recovery")
    settings = ours.settings.worker
    result = Recovery(
        "ours", f"lease {settings.lease:g} s, sweep every {settings.sweep_interval:g} s", steps=concurrency
    )
    victim = ours.worker("ours-a", concurrency)
    steps = {f"b{i}": {"task": "bench.block", "args": {"seconds": 600}} for i in range(concurrency)}
    run_id = ours.coordinator.submit(ours.workflow({"workflow": "recovery", "steps": steps})).run_id

    def running_on(worker: Worker) -> bool:
        record = ours.store.runs.get(run_id)
        return all(s.status.value == "running" and s.worker == worker.hostname for s in record.steps.values())

    if not wait_until(lambda: running_on(victim), 60):
        raise RuntimeError(f"steps did not start on {victim.hostname}:\n{victim.tail()}")
    rescuer = ours.worker("ours-b", concurrency)
    killed = time.time()
    victim.kill()
    wait_until(lambda: running_on(rescuer), cap, poll=0.1)
    record = ours.store.runs.get(run_id)
    result.seconds = [
        timestamp(s.started_at) - killed
        for s in record.steps.values()
        if s.worker == rescuer.hostname and s.started_at is not None
    ]
    rescuer.kill()
    ours.close()
    return result


def recover_plain(processes: Processes, concurrency: int, cap: float, visibility: float) -> Recovery:
    plain = Plain(processes, visibility_timeout=visibility)
    block = plain.task("plain.block")
    result = Recovery("plain Celery", f"visibility timeout {visibility:g} s, kombu defaults", steps=concurrency)
    victim = plain.worker("plain-a", concurrency)
    key = f"rec:{uuid.uuid4().hex}"
    for i in range(concurrency):
        block.apply_async(kwargs={"key": key, "i": i, "seconds": 600})

    def running_on(worker: Worker) -> bool:
        hosts = plain.redis.hgetall(f"{key}:host")
        return len(hosts) == concurrency and all(h == worker.hostname for h in hosts.values())

    if not wait_until(lambda: running_on(victim), 60):
        raise RuntimeError(f"tasks did not start on {victim.hostname}:\n{victim.tail()}")
    rescuer = plain.worker("plain-b", concurrency)
    killed = time.time()
    victim.kill()
    wait_until(lambda: running_on(rescuer), cap, poll=0.1)
    hosts, starts = plain.redis.hgetall(f"{key}:host"), plain.times(key, "start")
    result.seconds = [starts[int(i)] - killed for i, h in hosts.items() if h == rescuer.hostname]
    rescuer.kill()
    plain.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cap", type=float, default=180.0, help="seconds to wait for a step to run again")
    parser.add_argument("--visibility-timeout", type=float, default=60.0, help="plain Celery's, seconds")
    parser.add_argument("--scale", type=float, default=1.0, help="accepted for uniformity; sizes do not scale")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes per worker node")
    parser.add_argument("--keep", action="store_true", help="keep worker logs")
    args = parser.parse_args(argv)
    out = console()

    with Processes(keep=args.keep) as processes:
        with out.status("ours: kill a node, wait for its steps to run elsewhere..."):
            ours = recover_ours(processes, args.concurrency, args.cap)
        with out.status(f"plain Celery: the same (up to {args.cap:g} s)..."):
            plain = recover_plain(processes, args.concurrency, args.cap, args.visibility_timeout)

    table = Table(title=f"recovery after SIGKILL of a node running {args.concurrency} steps (seconds)")
    for column in ("system", "settings", "first step", "last step", "ours / this (last)"):
        table.add_column(column, justify="left" if column in ("system", "settings") else "right")
    for found in (ours, plain):
        table.add_row(
            found.name,
            found.settings,
            cell(found.first, args.cap),
            cell(found.last, args.cap),
            ratio(ours.last / found.last) if not math.isinf(found.last) else f"< {ours.last / args.cap:.2f}",
        )
    value = ours.last / plain.last if not math.isinf(plain.last) else ours.last / args.cap
    targets = [
        Target("recovery", "ours recovers, faster than plain Celery (last step; ratio of times)", value, value < 1),
    ]
    out.print(table)
    out.print(targets_table(targets))
    path = write(
        "recovery",
        argv if argv is not None else sys.argv[1:],
        {
            "cap_seconds": args.cap,
            "visibility_timeout": args.visibility_timeout,
            "concurrency": args.concurrency,
            "series": [
                {
                    "name": r.name,
                    "settings": r.settings,
                    "seconds": r.seconds,
                    "first": r.first,
                    "last": r.last,
                    "capped": math.isinf(r.last),
                }
                for r in (ours, plain)
            ],
            "ratios": {"last ours/plain": value, "plain_capped": math.isinf(plain.last)},
        },
        targets,
    )
    out.print(f"written to {path}")
    return 0 if all(t.met for t in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
