"""A TCP proxy on 127.0.0.1 that cuts connections after N bytes, for fault tests.

It forwards every connection to one target and counts the bytes flowing back to the client.
:meth:`CuttingProxy.cut_after` arms a cut: the connection that carries the N-th byte from
then on is closed after forwarding exactly N bytes, mid-response when N is past the headers.
:meth:`CuttingProxy.cut_each_connection_after` cuts every connection after N bytes of its own.

A cut closes both sides: by default with a FIN, so the client receives exactly the N bytes
and then a premature end of the body; with ``reset=True`` with a TCP RST, which also makes the
client's kernel drop bytes it had received but not yet read (as a crashed peer does).

:meth:`CuttingProxy.fail_next` answers the next N connections itself with an HTTP error
(``503 SlowDown``, ``500 InternalError``) after reading their request, and drops the
connections already open so that kept-alive clients reconnect and meet the burst.
:meth:`CuttingProxy.stall_next` holds the next response chunk back for some seconds.

``rate`` caps each connection's downstream bytes per second, the way a real S3 endpoint
serves one connection far slower than loopback does (benchmarks use it to show what
parallel ranged GETs buy over one stream when each stream is limited).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from types import TracebackType


class CuttingProxy:
    """Forward ``127.0.0.1:<port>`` to ``target``; cut connections on demand."""

    def __init__(self, target_host: str, target_port: int, *, rate: float | None = None) -> None:
        self.target = (target_host, target_port)
        self.rate = rate  # bytes per second per connection, downstream; None: unlimited
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._cuts_left = 0
        self._cut_at = 0
        self._counted = 0
        self._per_connection: int | None = None
        self._reset = False
        self._fail_left = 0
        self._fail_status = 503
        self._stall = 0.0
        self.connections = 0
        self.failed = 0
        self.cuts = 0
        self.bytes_down = 0
        self.port = 0

    @classmethod
    def for_url(cls, url: str, *, rate: float | None = None) -> CuttingProxy:
        """A proxy in front of ``http://host:port``."""
        hostport = url.split("://", 1)[-1].split("/", 1)[0]
        host, _, port = hostport.rpartition(":")
        return cls(host, int(port), rate=rate)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control ---------------------------------------------------------------------------
    def cut_after(self, nbytes: int, times: int = 1, *, reset: bool = False) -> None:
        """Cut the connection carrying byte ``nbytes`` (counted from now) ``times`` times;
        after each cut the count starts again."""
        with self._lock:
            self._reset = reset
            self._cut_at = nbytes
            self._counted = 0
            self._cuts_left = times

    def cut_each_connection_after(self, nbytes: int | None, *, reset: bool = False) -> None:
        """Cut every connection after ``nbytes`` sent back on it (None: stop doing that)."""
        with self._lock:
            self._reset = reset
            self._per_connection = nbytes

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` connections with ``status`` (503 SlowDown or 500)."""
        with self._lock:
            self._fail_left, self._fail_status = count, status
            sockets = list(self._sockets)
        for sock in sockets:  # kept-alive connections would never meet the burst
            _drop(sock, False)

    def stall_next(self, seconds: float) -> None:
        """Hold the next downstream chunk (of any connection) back for ``seconds``."""
        with self._lock:
            self._stall = seconds

    def disarm(self) -> None:
        with self._lock:
            self._cuts_left = 0
            self._per_connection = None
            self._fail_left = 0
            self._stall = 0.0

    # -- life cycle ------------------------------------------------------------------------
    def __enter__(self) -> CuttingProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> CuttingProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _reset(sock)
        if self._listener is not None:
            self._listener.close()
        for thread in list(self._threads):
            thread.join(timeout=5)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                fail = self._fail_left > 0
                if fail:
                    self._fail_left -= 1
                    self.failed += 1
            if fail:
                self._spawn(self._answer_error, client, self._fail_status)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self.connections += 1
                self._sockets.update((client, upstream))
            self._spawn(self._pump_up, client, upstream)
            self._spawn(self._pump_down, upstream, client)

    def _answer_error(self, client: socket.socket, status: int) -> None:
        """Read one request (headers and body) and answer it with an S3-style error."""
        client.settimeout(10)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or 0)
            while len(body) < length:
                chunk = client.recv(65536)
                if not chunk:
                    break
                body += chunk
            code, reason = ("SlowDown", "Slow Down") if status == 503 else ("InternalError", "Internal Server Error")
            xml = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
                   f"<Message>injected by CuttingProxy</Message></Error>").encode()
            client.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
                           f"Content-Length: {len(xml)}\r\nConnection: close\r\n\r\n".encode() + xml)
        except (OSError, ValueError):
            pass
        finally:
            _drop(client, False)

    def _pump_up(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close_pair(src, dst, reset=False)

    def _pump_down(self, src: socket.socket, dst: socket.socket) -> None:
        sent_here = 0
        reset = False
        paced_until = time.monotonic()
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                cut = False
                with self._lock:
                    stall, self._stall = self._stall, 0.0
                if stall:
                    time.sleep(stall)
                with self._lock:
                    allowed = len(data)
                    if self._cuts_left > 0:
                        left = self._cut_at - self._counted
                        if left <= len(data):
                            allowed, cut = max(0, left), True
                            self._cuts_left -= 1
                            self._counted = 0
                        else:
                            self._counted += len(data)
                    if self._per_connection is not None and sent_here + allowed >= self._per_connection:
                        allowed, cut = max(0, min(allowed, self._per_connection - sent_here)), True
                    if cut:
                        self.cuts += 1
                        reset = self._reset
                    self.bytes_down += allowed
                if allowed:
                    dst.sendall(data[:allowed])
                    sent_here += allowed
                    if self.rate:  # no credit for idle time: a kept-alive connection stays capped
                        paced_until = max(paced_until, time.monotonic()) + allowed / self.rate
                        ahead = paced_until - time.monotonic()
                        if ahead > 0:
                            time.sleep(ahead)
                if cut:
                    _drop(dst, reset)
                    _drop(src, reset)
                    return
        except OSError:
            pass
        finally:
            self._close_pair(src, dst, reset=False)

    def _close_pair(self, a: socket.socket, b: socket.socket, reset: bool) -> None:
        for sock in (a, b):
            if reset:
                _reset(sock)
            else:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
        with self._lock:
            self._sockets.discard(a)
            self._sockets.discard(b)


def _drop(sock: socket.socket, reset: bool) -> None:
    """Close the connection (a FIN, or a TCP RST with linger 0). It is shut down first so that
    a thread blocked in ``recv`` on it wakes up (closing the descriptor alone would not)."""
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _reset(sock: socket.socket) -> None:
    _drop(sock, True)
