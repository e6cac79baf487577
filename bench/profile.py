"""A profile of our worker node at full load: ``py-spy record`` during the throughput workload.

Run from the repository root::

    python3 -m bench.profile                 # 30 chains x 100 no-op steps, 8 s of samples
    python3 -m bench.profile --scale 0.3     # 9 chains: a quick run

py-spy is not a dependency of the project. Install its binary apart (its wheel ships it)::

    python3 -m pip install --target /tmp/pyspy py-spy    # then --py-spy /tmp/pyspy/bin/py-spy

(the default looks on ``PATH``, then at ``/tmp/pyspy/bin/py-spy``). Without it the benchmark
writes a result saying so and exits 0.

One worker node of ours, prefork ``--concurrency``, runs ``--chains`` chains of 100 no-op steps
(``bench.throughput``'s shape, so the pool never waits for work); ``py-spy record --subprocesses
--pid MAIN`` samples the main process and the pool processes for ``--duration`` seconds from
0.5 s after the submit, at ``--rate`` samples per second (py-spy leaves out idle samples: a
thread blocked in a system call, waiting for a Redis reply or its next task, so the shares are of
CPU time, and a process's share of samples says how busy it was), and
``py-spy dump`` takes one snapshot of every stack. Frames are aggregated by function (file and
name, not line). The table gives the top frames by **own** time (the sample's innermost frame)
and by **total** time (the frame anywhere in the sample's stack, counted once per sample), as
shares of all samples, and the share of samples in the main process and in the pool processes.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from bench import throughput
from bench.processes import Processes
from bench.report import console, write
from bench.systems import Ours, timestamp

FALLBACK = Path("/tmp/pyspy/bin/py-spy")
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:()]*)(?::\d+)?\)$")
PROCESS = re.compile(r"^process (?P<pid>\d+):")
TOP = 10
ENTRY = (
    "<frozen runpy>",
    "click/",
    "celery/bin/",
    "celery/__main__.py",
    "celery/bootsteps.py",
    "celery/worker/worker.py",
    "celery/concurrency/",
    "celery/worker/consumer/consumer.py",
    "billiard/process.py",
    "billiard/context.py",
    "billiard/popen_fork.py",
    "Pool._create_worker_process",
    "Worker.__call__ (billiard",
    "Worker.workloop (billiard",
)
"""Entry-point and pool-start frames that sit under every sample of a process (the CLI, the pool
forking its processes, a pool process's loop): left out of the total-time ranking."""


@dataclass(frozen=True)
class Profile:
    """Collapsed stacks of ``py-spy record --format raw`` and what they add up to."""

    own: Counter[str]
    total: Counter[str]
    processes: Counter[int]
    samples: int


def frame_name(frame: str) -> str:
    """``function (path)`` without the line, the path from its ``site-packages`` or the repository."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['function']} ({path})"


def parse(text: str) -> Profile:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    processes: Counter[int] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        pid = 0
        while frames and (found := PROCESS.match(frames[0])):  # parent first, then the child sampled
            pid = int(found["pid"])
            frames = frames[1:]
        names = [frame_name(f) for f in frames if f and not f.startswith("thread ")]
        if not names:
            continue
        samples += count
        processes[pid] += count
        own[names[-1]] += count
        for name in set(names):
            if not any(marker in name for marker in ENTRY):
                total[name] += count
    return Profile(own, total, processes, samples)


def find_py_spy(given: str | None) -> str | None:
    if given:
        return given
    return shutil.which("py-spy") or (str(FALLBACK) if FALLBACK.exists() else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chains", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --chains (quick runs: 0.3)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of samples (shortened to fit the load)")
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes of the worker node")
    parser.add_argument("--py-spy", dest="py_spy", default=None, help="path of the py-spy binary")
    parser.add_argument("--keep", action="store_true", help="keep worker logs")
    args = parser.parse_args(argv)
    chains = max(1, round(args.chains * args.scale))
    out = console()
    argv_used = argv if argv is not None else sys.argv[1:]
    binary = find_py_spy(args.py_spy)
    if binary is None:
        out.print("py-spy not found: python3 -m pip install --target /tmp/pyspy py-spy (not a project dependency)")
        write("profile", argv_used, {"measured": False, "why": "py-spy binary not found"}, [])
        return 0

    with Processes(keep=args.keep) as processes:
        ours = Ours(processes)
        worker = ours.worker("ours", args.concurrency)
        throughput.run_ours(ours, throughput.chains_workflow(2, 20))
        # Expected load time at ~400 steps/s: sample for most of it, never past its end.
        duration = max(1, min(round(args.duration), round(chains * 100 / 400 * 0.8)))
        raw = processes.tmp / "profile.txt"
        record_command = [binary, "record", "--pid", str(worker.process.pid), "--subprocesses", "--format", "raw"]
        record_command += ["--rate", str(args.rate), "--duration", str(duration), "--nonblocking", "-o", str(raw)]
        workflow = ours.workflow(throughput.chains_workflow(chains, 100))
        with out.status(f"{chains * 100:,} steps under py-spy for {duration} s"):
            started = time.time()
            run_id = ours.coordinator.submit(workflow).run_id
            time.sleep(0.5)
            recorder = subprocess.Popen(record_command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(min(2.0, duration / 2))
            dump = subprocess.run(
                [binary, "dump", "--pid", str(worker.process.pid), "--subprocesses", "--nonblocking"],
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout
            record_log, _ = recorder.communicate(timeout=duration + 60)
            record = ours.wait(run_id, 600)
        seconds = timestamp(record.finished_at) - started
        text = raw.read_text() if raw.exists() else ""
        ours.close()

    profile = parse(text)
    if profile.samples == 0:
        out.print(f"py-spy recorded nothing:\n{record_log}")
        write("profile", argv_used, {"measured": False, "why": record_log[-2000:]}, [])
        return 1
    main_pid = worker.process.pid
    main_share = profile.processes.get(main_pid, 0) / profile.samples
    table = Table(
        title=f"py-spy, our worker node (1 x {args.concurrency} prefork) at full load: {profile.samples:,} samples "
        f"in {duration} s; main process {main_share:.0%}, pool processes {1 - main_share:.0%}"
    )
    for column in ("#", "by own time", "own %", "by total time", "total %"):
        table.add_column(column, justify="right" if "%" in column or column == "#" else "left")
    own, total = profile.own.most_common(TOP), profile.total.most_common(TOP)
    for i in range(TOP):
        own_row = own[i] if i < len(own) else ("", 0)
        total_row = total[i] if i < len(total) else ("", 0)
        table.add_row(
            str(i + 1),
            own_row[0],
            f"{own_row[1] / profile.samples:.1%}",
            total_row[0],
            f"{total_row[1] / profile.samples:.1%}",
        )
    out.print(table)
    path = write(
        "profile",
        argv_used,
        {
            "measured": True,
            "chains": chains,
            "steps": chains * 100,
            "concurrency": args.concurrency,
            "duration": duration,
            "rate": args.rate,
            "load_seconds": seconds,
            "steps_per_second": chains * 100 / seconds,
            "samples": profile.samples,
            "main_process_share": main_share,
            "processes": {str(pid): n for pid, n in profile.processes.items()},
            "top_own": [{"frame": f, "share": n / profile.samples} for f, n in profile.own.most_common(30)],
            "top_total": [{"frame": f, "share": n / profile.samples} for f, n in profile.total.most_common(30)],
            "dump": dump[-20000:],
        },
        [],
    )
    out.print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
