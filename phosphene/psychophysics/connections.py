"""Connection guards of the experiment server, below ASGI (uvicorn's h11 protocol, subclassed).

uvicorn closes an idle keep-alive connection only after a first response, never one that sends
nothing or trickles its headers (slowloris), and its ``limit_concurrency`` counts idle connections,
so a few hundred idle sockets turned every request into a 503. `guarded_h11` adds what is missing:

- a **header deadline**: from the moment a connection opens, and again from the end of each
  response, the next request's headers must be complete within ``header_timeout_s``, else the
  connection is closed (uvicorn's ``timeout_keep_alive`` still closes idle keep-alive connections
  sooner; the body has its own limit, `guard.BodyLimit`);
- a **write deadline**: a reply the client stops reading is dropped after ``write_timeout_s``;
- a **connection cap that sheds idle connections first**: past ``max_connections``, the connection
  that has waited longest for its headers is closed (the new one when none waits), so idle sockets
  never turn away a participant with a request to make. Requests are not capped separately: one
  connection carries one request at a time, and the worker threads bound the work.

Header size is uvicorn's ``h11_max_incomplete_event_size``; ``backlog`` its listen queue.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, replace

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..io.serving import room_for_connections


@dataclass(frozen=True)
class ConnectionLimits:
    """Timeouts and caps of the experiment server's connections (see the module docstring)."""

    header_timeout_s: float = 10.0
    keep_alive_s: int = 5
    write_timeout_s: float = 30.0
    max_connections: int = 2048
    max_header_bytes: int = 16_384
    backlog: int = 2048


class _Guarded(H11Protocol):
    """uvicorn's `H11Protocol` with the header and write deadlines and idle-first shedding."""

    limits: ConnectionLimits = ConnectionLimits()
    waiting: OrderedDict  # connections waiting for request headers, longest-waiting first

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._seen_cycle = None

    # -- the header deadline ---------------------------------------------------------------------
    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._expire)
        self.waiting[self] = None

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self.waiting.pop(self, None)

    def _expire(self) -> None:
        self._header_timer = None
        self.waiting.pop(self, None)
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        if len(self.connections) > self.limits.max_connections:
            oldest = next(iter(self.waiting))
            oldest._expire()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and self.cycle is not self._seen_cycle:  # headers complete
            self._seen_cycle = self.cycle
            self._disarm()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        super().connection_lost(exc)

    # -- the write deadline ----------------------------------------------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.limits.write_timeout_s, self.transport.abort)

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        super().resume_writing()


def guarded_h11(limits: ConnectionLimits) -> type[H11Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)``: one per server (it holds the server's
    queue of waiting connections)."""
    return type("GuardedH11Protocol", (_Guarded,), {"limits": limits, "waiting": OrderedDict()})


def uvicorn_config(app, limits: ConnectionLimits | None = None, trusted_proxy: str | None = None):
    """The `uvicorn.Config` of the experiment server: `guarded_h11` connections (their cap lowered
    to what the open-file limit holds, `serving.room_for_connections`), no server header, no
    websockets, and ``X-Forwarded-For`` believed only from ``trusted_proxy`` (addresses, comma
    separated; None: from nobody, so the rate limits see the real peer)."""
    limits = limits or ConnectionLimits()
    limits = replace(limits, max_connections=room_for_connections(limits.max_connections))
    return uvicorn.Config(app, http=guarded_h11(limits), ws="none", log_level="warning",
                          server_header=False, limit_concurrency=None,
                          timeout_keep_alive=limits.keep_alive_s, backlog=limits.backlog,
                          h11_max_incomplete_event_size=limits.max_header_bytes,
                          proxy_headers=trusted_proxy is not None,
                          forwarded_allow_ips=trusted_proxy or "127.0.0.1")
