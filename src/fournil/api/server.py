"""How the API is served: uvicorn's options (`uvicorn_options`) and its HTTP protocol with a
header timeout (`HeaderTimeoutProtocol`).

uvicorn times out idle keep-alive connections but not a request whose headers never finish: a
client that sends half a request line and waits holds the connection (and its memory) forever,
and a thousand such clients hold a thousand. `HeaderTimeoutProtocol` gives a request's headers
`header_timeout` seconds from the connection's start (or from the first byte of a later request
on a kept-alive connection), then answers 408 and closes. The body's own deadline is the app's
(`middleware.Edge`): by then a request exists to answer.
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fournil.settings import Settings

PROTOCOL = "fournil.api.server:HeaderTimeoutProtocol"


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline on each request's headers."""

    #: set per process from the settings (`configure`), before the server accepts connections
    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        body = orjson.dumps(
            {"error": {"code": "request_timeout", "message": "request headers took too long"}}
        )
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()


def configure(settings: Settings) -> None:
    """Set this process's header timeout (each uvicorn worker calls it as it builds the app)."""
    HeaderTimeoutProtocol.header_timeout = settings.api.header_timeout_seconds


def uvicorn_options(settings: Settings) -> dict[str, object]:
    """The options `fournil api serve` gives uvicorn (the tests serve with the same)."""
    configure(settings)
    return {
        "http": PROTOCOL,
        "server_header": False,  # no "Server: uvicorn"
        "proxy_headers": True,  # the client address (failed-auth throttle) from the proxy's
        "forwarded_allow_ips": settings.api.forwarded_allow_ips,  # X-Forwarded-For, if trusted
        "timeout_keep_alive": 5,
        "log_level": "warning",
        "access_log": False,  # keys travel in headers; nothing about them is logged
    }
