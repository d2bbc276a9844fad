"""uvicorn's HTTP/1.1 protocols with the limits they lack: a deadline for a request's headers and a cap on open
connections.

uvicorn closes an idle keep-alive connection after a response, but a connection that never completes its
request line and headers (silent, or dripping a byte at a time) is held for ever; enough of them use up the
process's file descriptors and nothing can connect. Here every request's headers must arrive within
HEADER_SECONDS of its first byte (or of the connection), and at MAX_CONNECTIONS a new connection closes the oldest
one that is still waiting for its headers (so a flood of silent connections cannot lock people out for even
those seconds), or itself when every connection is busy with a request. The body's deadline is the app's
(`server.BODY_SECONDS`).

`serve` speaks HTTP with httptools (a C parser) where it is installed, as uvicorn's own "auto" does, and with h11
(pure Python) otherwise: under load h11 cost ~0.2 ms of CPU a request more (docs/embed.md).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 10.0
MAX_CONNECTIONS = 512  # under the usual soft limit of 1,024 descriptors, with room for files and workers


class Guarded:
    """The limits, for either of uvicorn's protocols (both keep `cycle`, `connections`, `transport`, `loop`)."""

    header_seconds = HEADER_SECONDS
    max_connections = MAX_CONNECTIONS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._waiting_since = self.loop.time()
        if len(self.connections) > self.max_connections:
            waiting = [c for c in self.connections if c is not self and getattr(c, "_header_deadline", None)]
            if not waiting:
                transport.abort()  # every other connection is being served: this one waits its turn elsewhere
                return
            # No response is owed to a request not yet sent: the longest-waiting silent one gives way.
            min(waiting, key=lambda c: c._waiting_since).transport.abort()
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # the first bytes of a next request on a kept-alive connection
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # its headers are in: the request runs, under the app's own deadlines

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._waiting_since = self.loop.time()
        self._header_deadline = self.loop.call_later(self.header_seconds, self._too_slow)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_deadline", None)
        if timer is not None:
            timer.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()


class GuardedH11Protocol(Guarded, H11Protocol):
    pass


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed
    GuardedHttpToolsProtocol = None
else:
    class GuardedHttpToolsProtocol(Guarded, HttpToolsProtocol):  # type: ignore[no-redef]
        pass


def guarded_protocol() -> type:
    """The guarded protocol `serve` uses: httptools' where it imports, else h11's."""
    return GuardedHttpToolsProtocol or GuardedH11Protocol
