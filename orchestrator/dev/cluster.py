"""A real Redis Cluster on this machine, for trying the cluster store, its tests and its benchmark.

Three masters and a replica each by default, on free ports in a folder of the caller's:
``redis-server --cluster-enabled yes`` for each node, then ``redis-cli --cluster create`` (the
slots split in contiguous ranges, one replica per master). Every process is started here and
stopped here, by pid. Needs ``redis-server`` and ``redis-cli`` (Debian's ``redis-server`` package).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

REDIS_SERVER = "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else "redis-server"
REDIS_CLI = "/usr/bin/redis-cli" if Path("/usr/bin/redis-cli").exists() else "redis-cli"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    # the cluster bus listens on port + 10000: it must be free too
    if port + 10000 > 65535:
        return free_port()
    with socket.socket() as bus:
        try:
            bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            return free_port()
    return port


@dataclass
class Node:
    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    def client(self) -> Redis:
        return Redis(port=self.port, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.folder / "nodes.conf"),
                "--cluster-node-timeout",
                "2000",
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception), self.client() as client:
                if client.ping():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start: {(self.folder / 'redis.log').read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def role(self) -> str:
        with self.client() as client:
            return str(client.info("replication")["role"])


@dataclass
class LocalCluster:
    folder: Path
    masters: int = 3
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The store URL: ``redis+cluster://`` and every node (any one would do to discover the rest)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        self.nodes = [Node(free_port(), self.folder / f"node{i}") for i in range(2 * self.masters)]
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 30) -> None:
        """Until every node says ``cluster_state:ok`` and every master has its replica in sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(node) for node in self.nodes if node.process and node.process.poll() is None):
                return
            time.sleep(0.2)
        raise RuntimeError("the cluster did not become healthy")

    @staticmethod
    def _ok(node: Node) -> bool:
        with contextlib.suppress(Exception), node.client() as client:
            info = client.cluster("info")
            state = info.get("cluster_state") if isinstance(info, dict) else None
            if state != "ok":
                return False
            replication = client.info("replication")
            if replication["role"] == "slave":
                return bool(replication.get("master_link_status") == "up")
            return True
        return False

    def replicas(self) -> list[Node]:
        return [n for n in self.nodes if n.role() == "slave"]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def local_cluster(folder: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(folder)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
