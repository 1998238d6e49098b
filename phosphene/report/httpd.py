"""A small HTTP server whose idle connections cost no thread (standard library only).

`BoundedHTTPServer` runs one loop (``serve_forever``) over a selector: it accepts connections and
keeps them there, threadless, while it reads their request head (request line and headers, at
most ``max_header_bytes``); only a complete head goes to one of ``threads`` worker threads, which
runs the handler on it (``handler(sock, address, server, head)``).

- a connection whose head is not complete within ``header_timeout_s`` of opening is closed, be it
  silent or trickling bytes (slowloris), and so is one whose head is too long;
- a worker writes the reply with ``write_timeout_s`` per write and ``reply_timeout_s`` in all
  (a client that stops reading: the socket is shut down);
- past ``max_connections`` the connection that has waited longest is closed (the new one when none
  waits), and the same happens when the process runs out of file descriptors.

Handlers answer one request per connection (``HTTP/1.0``): a connection never idles on a thread.
"""

from __future__ import annotations

import errno
import selectors
import socket
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..io.serving import listen_socket, room_for_connections

_OUT_OF_FILES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


@dataclass(frozen=True)
class ServerLimits:
    """Threads, connections and timeouts of a `BoundedHTTPServer` (see the module docstring)."""

    threads: int = 16
    max_connections: int = 1024
    header_timeout_s: float = 10.0
    max_header_bytes: int = 16_384
    write_timeout_s: float = 10.0
    reply_timeout_s: float = 30.0
    backlog: int = 1024


class BoundedHTTPServer:
    """Serve ``handler`` (called as ``handler(sock, address, server)``) on ``host:port``."""

    def __init__(self, handler, host: str, port: int, limits: ServerLimits | None = None):
        self.handler, self.limits = handler, limits or ServerLimits()
        self.max_connections = room_for_connections(self.limits.max_connections)
        self.socket = listen_socket(host, port)
        self.socket.listen(self.limits.backlog)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._waiting: OrderedDict[socket.socket, float] = OrderedDict()  # deadline, oldest first
        self._heads: dict[socket.socket, bytearray] = {}
        self._busy: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.limits.threads, thread_name_prefix="phosphene-http")
        self._stop = threading.Event()

    # -- the loop ------------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Accept, wait and dispatch until `shutdown` is called."""
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.25):
                if key.fileobj is self.socket:
                    self._accept()
                elif key.fileobj is self._wake_r:
                    self._wake_r.recv(64)
                else:
                    self._read_head(key.fileobj)
            self._expire(time.monotonic())

    def shutdown(self) -> None:
        """Make `serve_forever` return (from another thread)."""
        self._stop.set()
        self._wake_w.send(b"x")

    def server_close(self) -> None:
        """Close the listening socket, the waiting connections and the workers."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        for conn in list(self._waiting):
            self._close_waiting(conn)
        with self._lock:
            for conn in self._busy:
                _shut(conn)
        self._selector.close()
        for sock in (self.socket, self._wake_r, self._wake_w):
            sock.close()

    # -- connections ---------------------------------------------------------------------------------
    def _accept(self) -> None:
        for _ in range(256):  # a burst at a time, so the loop also serves the waiting ones
            try:
                conn, _ = self.socket.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_FILES and self._waiting:
                    self._close_waiting(next(iter(self._waiting)))
                    continue
                return
            if self._open() >= self.max_connections:
                if not self._waiting:
                    conn.close()
                    continue
                self._close_waiting(next(iter(self._waiting)))
            conn.setblocking(False)
            self._waiting[conn] = time.monotonic() + self.limits.header_timeout_s
            self._heads[conn] = bytearray()
            self._selector.register(conn, selectors.EVENT_READ)

    def _open(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._busy)

    def _close_waiting(self, conn: socket.socket) -> None:
        self._waiting.pop(conn, None)
        self._heads.pop(conn, None)
        self._selector.unregister(conn)
        conn.close()

    def _read_head(self, conn: socket.socket) -> None:
        """Add what arrived to the connection's head; hand a complete head to a worker."""
        try:
            data = conn.recv(self.limits.max_header_bytes)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        head = self._heads[conn]
        head += data
        end = head.find(b"\r\n\r\n")
        end = end + 4 if end >= 0 else (head.find(b"\n\n") + 2 if b"\n\n" in head else -1)
        if not data or (end < 0 and len(head) >= self.limits.max_header_bytes):
            self._close_waiting(conn)
        elif end >= 0:
            self._waiting.pop(conn, None)
            self._heads.pop(conn, None)
            self._selector.unregister(conn)
            conn.setblocking(True)
            conn.settimeout(self.limits.write_timeout_s)
            with self._lock:
                self._busy[conn] = time.monotonic() + self.limits.reply_timeout_s
            self._pool.submit(self._handle, conn, bytes(head[:end]))

    def _handle(self, conn: socket.socket, head: bytes) -> None:
        try:
            with self._lock:  # the deadline counts from when a worker takes the connection
                self._busy[conn] = time.monotonic() + self.limits.reply_timeout_s
            self.handler(conn, conn.getpeername(), self, head)
        except OSError:
            pass  # the client went away, or a timeout shut the socket
        except Exception as exc:  # a bug in a handler must not stop the server
            print(f"report serve: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            with self._lock:
                self._busy.pop(conn, None)
            _shut(conn)
            conn.close()

    def _expire(self, now: float) -> None:
        while self._waiting:
            conn, deadline = next(iter(self._waiting.items()))
            if deadline > now:
                break
            self._close_waiting(conn)
        with self._lock:
            late = [conn for conn, deadline in self._busy.items() if deadline <= now]
        for conn in late:
            _shut(conn)


def _shut(conn: socket.socket) -> None:
    """End both directions of ``conn`` so that a thread blocked on it returns."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
