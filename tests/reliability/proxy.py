"""A TCP proxy a test can cut: every connection dropped, new ones refused, until it reopens.

Threads, not asyncio: the test thread stays free to poll the run while the proxy pumps bytes.
A cut closes each connection with an RST (``SO_LINGER`` 0), as a failing network path or a
firewall would, and closes the listening socket so that connecting fails with ECONNREFUSED.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

from tests.integration.conftest import free_port

ACCEPT_POLL = 0.1
CHUNK = 65536


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``.

    Args:
        upstream_host: Where to connect.
        upstream_port: Its port.
        port: The port to listen on (a free one by default); kept across cuts.
    """

    def __init__(self, upstream_host: str, upstream_port: int, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.accepted = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._open = threading.Event()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def connections(self) -> int:
        """Open client connections (each has an upstream twin)."""
        with self._lock:
            return len(self._sockets) // 2

    def start(self) -> TcpProxy:
        """Listen and forward (also how a cut proxy reopens)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(ACCEPT_POLL)
        self._listener = listener
        self._open.set()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), name="proxy-accept", daemon=True)
        self._acceptor.start()
        return self

    def cut(self) -> int:
        """Drop every connection and refuse new ones; returns how many connections were dropped."""
        self._open.clear()
        if self._acceptor is not None:
            self._acceptor.join(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            _reset(sock)
        return len(doomed) // 2

    def close(self) -> None:
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._open.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if not self._open.is_set():
                    _reset(client)
                    _reset(upstream)
                    return
                self._sockets |= {client, upstream}
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), name="proxy-pump", daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # One side ended: end the other too, and forget both.
            with self._lock:
                self._sockets -= {source, sink}
            _reset(source)
            _reset(sink)


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN, as a dropped network path looks to the peer.

    ``shutdown(SHUT_RD)`` first: it wakes a pump thread blocked in ``recv`` on this socket
    (closing alone would not) and sends nothing to the peer.
    """
    for action in (
        lambda: sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)),
        lambda: sock.shutdown(socket.SHUT_RD),
        sock.close,
    ):
        with contextlib.suppress(OSError):
            action()
