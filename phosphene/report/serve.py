"""`phosphene report serve`: the site folder over HTTP with the standard library (static files only)."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002  (the base class's name)
        pass


def make_server(site: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server of the files under ``site`` (port 0 picks a free port)."""
    handler = functools.partial(_QuietHandler, directory=os.fspath(site))
    return ThreadingHTTPServer((host, port), handler)


def serve(site: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted."""
    server = make_server(site, host, port)
    print(f"serving {site} at http://{host}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@contextlib.contextmanager
def background(site: str | os.PathLike) -> Iterator[str]:
    """Serve ``site`` on a free local port in a thread; yields the base URL."""
    server = make_server(site, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
