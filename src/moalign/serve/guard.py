"""The ASGI layer in front of the routes: metrics of every answer, bearer-token authentication,
and a request body read with a size cap (413) and a read timeout (408) before any route runs.

Written as plain ASGI middleware (no `BaseHTTPMiddleware`) so that a route still sees the
client's ``http.disconnect`` after its body: the body is read here, then replayed once.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from moalign.serve.errors import error_bytes
from moalign.serve.metrics import ServeMetrics
from moalign.serve.playground import PAGE_PATHS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json",
                        *PAGE_PATHS})  # the playground page asks for the key itself
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class Guard:
    """Metrics, authentication and the capped, timed body read, in that order."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, api_key: str | None,
                 max_body_bytes: int, read_timeout_s: float) -> None:
        self.app, self.metrics, self.api_key = app, metrics, api_key
        self.max_body, self.read_timeout = max_body_bytes, read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.perf_counter()
        scope.setdefault("state", {})["arrived"] = arrived
        path, status = scope.get("path", ""), [0]

        async def send_recorded(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.metrics.record_response(path, status[0], time.perf_counter() - arrived)

        if self.api_key and path not in OPEN_PATHS and not self._authorised(scope):
            await reply(send_recorded, 401, "missing or wrong API key: send the header "
                        "'Authorization: Bearer <key>'", "invalid_api_key",
                        [(b"www-authenticate", b"Bearer")])
            return
        if scope.get("method") in BODY_METHODS:
            try:
                body = await self._read_body(scope, receive)
            except BodyError as e:
                await reply(send_recorded, e.status, e.message, e.code,
                            [(b"connection", b"close")])
                return
            if body is None:  # the client left while sending
                return
            receive = replay(body, receive)
        await self.app(scope, receive, send_recorded)

    def _authorised(self, scope: Scope) -> bool:
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(
            token.strip(), (self.api_key or "").encode())

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BodyError(400, "invalid Content-Length header", "invalid_header")
            if int(declared) > self.max_body:
                raise BodyError(413, f"the body is {int(declared)} bytes; the limit is "
                                     f"max_body_bytes={self.max_body}", "body_too_large")
        chunks, size = [], 0
        deadline = time.monotonic() + self.read_timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                raise BodyError(408, f"the body was not received within read_timeout_s="
                                     f"{self.read_timeout:g} s", "read_timeout") from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BodyError(413, f"the body exceeds max_body_bytes={self.max_body}",
                                "body_too_large")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the already read body once, then the client's own messages
    (``http.disconnect`` when it leaves)."""
    pending = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed


async def reply(send: Send, status: int, message: str, code: str,
                headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer in the JSON error shape without running the app."""
    body = error_bytes(status, message, code)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
