"""What every HTTP response of the app obeys: requests only for this server's own names (no DNS
rebinding), no page content that loads anything from elsewhere, throttled logins."""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]

# Nothing from a document or the model may make the browser fetch another host: images, media,
# fonts, frames and scripted requests are limited to this origin (inline data: for Gradio's
# own icons). Gradio needs inline scripts and styles, so script-src is not restricted here.
CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: blob:; "
       "font-src 'self' data:; connect-src 'self'; frame-src 'self'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
       "style-src 'self' 'unsafe-inline'; worker-src 'self' blob:")
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> set[str]:
    """Host header values this server answers: its bound address, loopback names when bound to
    loopback or all interfaces, and any ``extra`` (``RAG_ALLOWED_HOSTS``) names."""
    names = {f"[{host}]" if ":" in host else host}
    if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        names |= set(LOCAL_NAMES)
    extra = [h.strip().lower() for h in extra if h.strip()]
    exact = {h for h in extra if re.search(r":\d+$", h)}  # 'name:port' as given
    names |= set(extra) - exact
    return {f"{n}:{port}" for n in names} | (names if port == 80 else set()) | exact


class Throttle:
    """At most ``max_failures`` failed logins per client per ``window`` seconds (the UI's
    login form and the HTTP API share this rule; each server keeps its own counts)."""

    def __init__(self, max_failures: int = 5, window: float = 60.0) -> None:
        self.max_failures, self.window = max_failures, window
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        with self._lock:
            q = self._failures[client]
            now = time.monotonic()
            while q and now - q[0] > self.window:
                q.popleft()
            return len(q) >= self.max_failures

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures[client].append(time.monotonic())


class GuardMiddleware:
    """ASGI middleware: 403 for an unknown Host or a foreign Origin, CSP and nosniff headers on
    every response, and at most ``max_failures`` failed logins per client per ``window`` s."""

    def __init__(self, app: ASGIApp, hosts: set[str], max_failures: int = 5,
                 window: float = 60.0) -> None:
        self.app = app
        self.hosts = {h.lower() for h in hosts}
        self.throttle = Throttle(max_failures, window)

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        host = headers.get("host", "").lower()
        origin = headers.get("origin")
        if host not in self.hosts:
            await _deny(send, scope, 403, f"Host {host!r} is not served here (DNS rebinding "
                        "guard; add it to RAG_ALLOWED_HOSTS to allow it)")
            return
        client = (scope.get("client") or ("?", 0))[0]
        is_login = scope["type"] == "http" and scope.get("path", "").rstrip("/").endswith(
            "/login") and scope.get("method") == "POST"
        # "null": an opaque origin (a sandboxed iframe, a data: page) — foreign, except for the
        # login form, which the browser posts with Origin: null under our no-referrer policy
        foreign = (origin == "null" and not is_login) or (
            origin not in (None, "", "null") and urlsplit(origin).netloc.lower() not in self.hosts)
        if foreign:
            await _deny(send, scope, 403, f"Origin {origin!r} may not call this server")
            return
        if is_login and self.throttle.blocked(client):
            await _deny(send, scope, 429, "Too many failed logins; wait a minute and try again")
            return

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                if is_login and message["status"] >= 400:
                    self.throttle.failed(client)
                extra = [(b"content-security-policy", CSP.encode()),
                         (b"x-content-type-options", b"nosniff"),
                         (b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, wrapped)


async def _deny(send: Callable[[Message], Awaitable[None]], scope: Scope, status: int,
                text: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": text.encode()})
