"""ASGI guards of the experiment server: request size and time limits, security headers, and a
per-client rate limit for session creation.

- `BodyLimit`: a request body over ``max_bytes`` (declared or streamed) gets 413 before the app
  parses it; a body not received within ``timeout_s`` gets 408 (so a client that declares more
  than it sends cannot hold a worker).
- `SecurityHeaders`: a strict Content-Security-Policy (no inline code, no framing), ``X-Frame-Options:
  DENY``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` on every reply, and
  ``Cache-Control: no-store`` on every ``/api/`` reply (they carry tokens and answers).
- `RateLimit`: at most ``count`` events per ``window_s`` seconds per key (a sliding window, exact
  under concurrent requests); an event that did not count can be refunded.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


async def _reply(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Read each request body up front, at most ``max_bytes`` and within ``timeout_s``."""

    def __init__(self, app, max_bytes: int = 16_384, timeout_s: float = 10.0):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _reply(send, 413, f"request body over {self.max_bytes} bytes")
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout_s)
        except asyncio.TimeoutError:
            return await _reply(send, 408, f"request body not received within {self.timeout_s:g} s")
        if body is None:
            return await _reply(send, 413, f"request body over {self.max_bytes} bytes")
        if body is False:  # the client went away
            return None
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _read(self, receive) -> bytes | None | bool:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class SecurityHeaders:
    """Add `SECURITY_HEADERS` to every reply, and ``Cache-Control: no-store`` under ``/api/``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        api = scope.get("path", "").startswith("/api/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if not (api and k.lower() == b"cache-control")]
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if api:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


class RateLimit:
    """At most ``count`` events per ``window_s`` seconds per key; thread-safe."""

    def __init__(self, count: int, window_s: float, max_keys: int = 100_000):
        self.count, self.window_s, self.max_keys = count, window_s, max_keys
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> float:
        """Record an event for ``key``; 0 if allowed, else the seconds until one would be."""
        now = time.monotonic()
        with self._lock:
            if len(self._events) >= self.max_keys:  # forget the idle keys rather than grow
                self._events = {k: q for k, q in self._events.items()
                                if q and q[-1] > now - self.window_s}
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window_s:
                events.popleft()
            if len(events) >= self.count:
                return events[0] + self.window_s - now
            events.append(now)
            return 0.0

    def refund(self, key: str) -> None:
        """Forget ``key``'s latest event (one that turned out not to count)."""
        with self._lock:
            events = self._events.get(key)
            if events:
                events.pop()
