"""The API's ASGI middleware: `Edge`, in front of every route (the body size and time limits,
HEAD for every GET route, security headers, the request metrics, and a structured 503 for
anything unhandled)."""

import asyncio
import logging
import time

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fournil.api import telemetry
from fournil.api.errors import error_response

log = logging.getLogger("fournil.api")

#: on every response; a route that sets one of them (the docs' assets: Cache-Control) keeps its own
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class Edge:
    """Pure ASGI middleware (Starlette's BaseHTTPMiddleware costs a task and a stream per
    request): the body size limit, the body deadline (`body_timeout` seconds from the request's
    start: 408 and the connection closed), HEAD answered as GET without the body, security
    headers, request metrics, and a structured 503 for anything unhandled."""

    def __init__(self, app: ASGIApp, max_body: int, body_timeout: float = 30.0) -> None:
        self.app, self.max_body, self.body_timeout = app, max_body, body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        original = scope
        head = scope["method"] == "HEAD"
        if head:  # the server itself sends no body for HEAD; the routes see a GET
            scope = dict(scope, method="GET")
        too_large = f"request body over {self.max_body} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                await error_response(413, "too_large", too_large)(scope, receive, _secured(send))
                self._measure(scope, 413, start)
                return
        received = 0
        body_done = False
        deadline = start + self.body_timeout

        async def limited() -> Message:
            nonlocal received, body_done
            if body_done:  # waiting for a disconnect, not for the body: no deadline
                return await receive()
            try:
                # a body shorter than its Content-Length (or a trickle) must not hold the
                # connection: it has `body_timeout` seconds from the request's start
                async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                    message = await receive()
            except TimeoutError:
                raise StarletteHTTPException(
                    408, "request body took too long", headers={"Connection": "close"}
                ) from None
            received += len(message.get("body", b""))
            body_done = not message.get("more_body", False)
            if received > self.max_body:  # a chunked body without a length
                raise StarletteHTTPException(413, too_large)
            return message

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = {**message, "headers": headers}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except Exception:
            log.exception("unhandled error on %s", scope.get("path"))
            if not status:
                status = 503
                await error_response(503, "internal", "could not answer, retry later")(
                    scope, receive, sending
                )
        self._measure(scope, status, start, original["method"])

    @staticmethod
    def _measure(scope: Scope, status: int, start: float, method: str | None = None) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        telemetry.REQUESTS.labels(route, method or scope["method"], str(status)).inc()
        telemetry.LATENCY.labels(route).observe(time.perf_counter() - start)


def _secured(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), *SECURITY_HEADERS]
            message = {**message, "headers": headers}
        await send(message)

    return sending
