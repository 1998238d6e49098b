"""`phosphene report serve`: the site folder over HTTP (standard library), regular files only.

What is served: a ``GET``/``HEAD`` of a regular file whose real path lies inside the site (a
folder gives its ``index.html``). Everything else is a 404 with nothing about the file system in
it: paths with ``..`` (also as ``%2e%2e``), NUL bytes or backslashes, symbolic links leading out
of the site (to files or folders), FIFOs, devices, sockets, folders without ``index.html`` (no
listings). Files are opened without following a last symbolic link and without blocking, and
checked to be regular after opening. Replies carry ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: no-referrer``, a Content-Security-Policy (the site's own files only; inline code
allowed because the atlas page has some), ``Server: phosphene`` (no version) and one request per
connection. Connections, threads and timeouts are bounded by `httpd.BoundedHTTPServer`.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler

from .httpd import BoundedHTTPServer, ServerLimits

CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'self'")
SECURITY_HEADERS = (("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "SAMEORIGIN"),
                    ("Cross-Origin-Opener-Policy", "same-origin"))
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


def site_path(root: str, url_path: str) -> tuple[str, list[str], bool] | None:
    """(real path inside ``root``, the URL's path segments, whether the URL ends in a slash) for
    a request target, or None when it is malformed or leads outside ``root`` (a real path)."""
    try:
        path = urllib.parse.unquote(urllib.parse.urlsplit(url_path).path, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    if "\x00" in path or "\\" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    real = os.path.realpath(os.path.join(root, *parts))
    if os.path.commonpath([real, root]) != root:
        return None
    return real, parts, path.endswith("/") or not parts


class SiteHandler(SimpleHTTPRequestHandler):
    """Serve regular files under ``directory`` (see the module docstring); the request head comes
    already read (``head``), so the handler only writes."""

    protocol_version = "HTTP/1.0"
    server_version = "phosphene"

    def __init__(self, request, client_address, server, head: bytes, directory: str):
        self.head = head
        super().__init__(request, client_address, server, directory=directory)

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the socket's reader (the socket itself stays open)
        self.rfile = io.BytesIO(self.head)

    def version_string(self) -> str:
        return self.server_version

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        super().end_headers()

    def send_head(self):
        """Headers of the file the request names, and the open file; None after an error reply."""
        root = os.path.realpath(self.directory)
        found = site_path(root, self.path)
        if found is None:
            self.send_error(404, "File not found")
            return None
        real, parts, slash = found
        if os.path.isdir(real):
            if not slash:  # relative links in the folder's index.html need the slash
                self.send_response(301)
                self.send_header("Location", "/" + "/".join(urllib.parse.quote(p) for p in parts) + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return self._open(os.path.join(real, "index.html"), root)
        return self._open(real, root)

    def _open(self, path: str, root: str):
        real = os.path.realpath(path)
        if os.path.commonpath([real, root]) != root:
            self.send_error(404, "File not found")
            return None
        try:
            fd = os.open(real, _OPEN_FLAGS)
        except OSError:
            self.send_error(404, "File not found")
            return None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            self.send_error(404, "File not found")
            return None
        handle = os.fdopen(fd, "rb")
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(real))
        self.send_header("Content-Length", str(info.st_size))
        self.send_header("Last-Modified", self.date_time_string(int(info.st_mtime)))
        self.end_headers()
        return handle

    def list_directory(self, path):  # never reached; no listings whatever the base class does
        self.send_error(404, "File not found")
        return None

    def log_message(self, format: str, *args) -> None:  # noqa: A002  (the base class's name)
        pass


def make_server(site: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
                limits: ServerLimits | None = None) -> BoundedHTTPServer:
    """A server of the files under ``site`` (port 0 picks a free port); a bad host or a busy port
    is a one-line `PhospheneError`."""
    directory = os.fspath(site)

    def handler(sock, address, server, head: bytes):
        return SiteHandler(sock, address, server, head, directory)

    return BoundedHTTPServer(handler, host, port, limits)


def serve(site: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
          limits: ServerLimits | None = None) -> None:
    """Serve until interrupted."""
    server = make_server(site, host, port, limits)
    print(f"serving {site} at http://{host}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@contextlib.contextmanager
def background(site: str | os.PathLike, limits: ServerLimits | None = None) -> Iterator[str]:
    """Serve ``site`` on a free local port in a thread; yields the base URL."""
    server = make_server(site, "127.0.0.1", 0, limits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
