"""Live push of alert changes to browsers, over Server-Sent Events.

The service hands every changed alert (raised, updated, resolved, handled) to
:meth:`AlertHub.publish`; each open ``GET /api/v1/stream`` has a bounded queue and gets
the alerts its caller may see, as ``event: alert`` with the alert's JSON (the same
object ``GET /api/v1/alerts`` lists).  SSE rather than WebSocket: the traffic is one
way, the browser's ``EventSource`` reconnects by itself, and it passes proxies as plain
HTTP.

A browser that cannot keep up (a laptop asleep with the tab open) must not hold the
service's memory: when its queue is full the stream gets ``event: resync`` and its
backlog is dropped, and the page reloads the list instead.  A comment line every
``keepalive_s`` keeps proxies from closing an idle stream and lets the server notice a
client that has gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from alerting import Alert
from gateway.api.access import Access
from gateway.auth.principal import Principal

QUEUE_LIMIT = 1000
"""Alerts waiting for one slow client before it is told to resync."""


@dataclass(eq=False)
class _Subscriber:
    sees: Callable[[Alert], bool]
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False


class AlertHub:
    """Fan-out of alert changes to the open streams, each filtered by its caller's scope."""

    def __init__(self) -> None:
        self._subscribers: set[_Subscriber] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, alerts: Sequence[Alert]) -> None:
        """Queue ``alerts`` for every stream that may see them; never blocks."""
        if not alerts or not self._subscribers:
            return
        frames = [(a, _frame("alert", orjson.dumps(a.to_json()))) for a in alerts]
        for sub in self._subscribers:
            for alert, frame in frames:
                if sub.overflowed or not sub.sees(alert):
                    continue
                try:
                    sub.queue.put_nowait(frame)
                except asyncio.QueueFull:
                    sub.overflowed = True

    async def stream(self, sees: Callable[[Alert], bool], *, keepalive_s: float = 15.0
                     ) -> AsyncGenerator[bytes, None]:
        """The frames of one client until it disconnects (the generator is closed)."""
        sub = _Subscriber(sees)
        self._subscribers.add(sub)
        try:
            yield b"retry: 3000\n" + _frame("hello", b"{}")
            while True:
                if sub.overflowed:
                    while not sub.queue.empty():
                        sub.queue.get_nowait()
                    sub.overflowed = False
                    yield _frame("resync", b"{}")
                    continue
                try:
                    yield await asyncio.wait_for(sub.queue.get(), keepalive_s)
                except TimeoutError:
                    yield b": keepalive\n\n"
        finally:
            self._subscribers.discard(sub)


def _frame(event: str, data: bytes) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def live_router(hub: AlertHub, access: Access, *, keepalive_s: float = 15.0) -> APIRouter:
    router = APIRouter()

    @router.get("/api/v1/stream", tags=["alerts"], summary="Live alert changes (SSE)",
                response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {}},
                                 "description": "event: alert, data: the alert's JSON; "
                                 "event: resync when the client fell behind"}})
    async def stream(request: Request,
                     principal: Principal = Depends(access.user)
                     ) -> StreamingResponse:
        async def frames() -> AsyncIterator[bytes]:
            source = hub.stream(lambda a: access.sees_alert(principal, a),
                                keepalive_s=keepalive_s)
            try:
                async for frame in source:
                    if await request.is_disconnected():
                        break
                    yield frame
            finally:
                with contextlib.suppress(RuntimeError):
                    await source.aclose()

        return StreamingResponse(frames(), media_type="text/event-stream", headers={
            "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router
