"""The API's ASGI middleware: `Edge`, in front of every route (the body size limit, the request
metrics, and a structured 503 for anything unhandled)."""

import logging
import time

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fournil.api import telemetry
from fournil.api.errors import error_response

log = logging.getLogger("fournil.api")


class Edge:
    """Pure ASGI middleware (Starlette's BaseHTTPMiddleware costs a task and a stream per
    request): the body size limit, request metrics, and a structured 503 for anything unhandled."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        too_large = f"request body over {self.max_body} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                await error_response(413, "too_large", too_large)(scope, receive, send)
                self._measure(scope, 413, start)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:  # a chunked body without a length
                raise StarletteHTTPException(413, too_large)
            return message

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except Exception:
            log.exception("unhandled error on %s", scope.get("path"))
            if not status:
                status = 503
                await error_response(503, "internal", "could not answer, retry later")(
                    scope, receive, send
                )
        self._measure(scope, status, start)

    @staticmethod
    def _measure(scope: Scope, status: int, start: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        telemetry.REQUESTS.labels(route, scope["method"], str(status)).inc()
        telemetry.LATENCY.labels(route).observe(time.perf_counter() - start)
