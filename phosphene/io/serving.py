"""What phosphene's two servers share: a listening socket with one-line errors, and room for many
open connections.

- `listen_socket(host, port)`: a bound (not yet listening) TCP socket for ``host`` (a name, an IPv4
  or an IPv6 address); a bad host, a port in use or one out of range is a one-line
  `PhospheneError` (``--host 999.1.1.1`` included), never a traceback.
- `room_for_connections(wanted)`: raise this process's soft limit on open files towards its hard
  limit, so that ``wanted`` connections fit; returns how many connections fit now (a server caps
  its connections there, keeping ``FILE_MARGIN`` descriptors for its own files).
"""

from __future__ import annotations

import socket

from ..errors import PhospheneError

try:
    import resource
except ImportError:  # Windows: no per-process descriptor limit to raise
    resource = None

FILE_MARGIN = 64


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``SO_REUSEADDR``; port 0: a free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        sock = socket.socket(infos[0][0], socket.SOCK_STREAM)
    except (OSError, OverflowError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise PhospheneError(f"cannot listen on {host}:{port}: {reason}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(infos[0][4])
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise PhospheneError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


def room_for_connections(wanted: int) -> int:
    """Raise the soft open-file limit so that ``wanted`` connections fit (up to the hard limit);
    the number of connections that fit afterwards (``wanted`` where there is no such limit)."""
    if resource is None:
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FILE_MARGIN
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FILE_MARGIN))
