"""A real HTTP receiver for notification tests: records requests, fails on demand.

Runs uvicorn in its own thread on an ephemeral 127.0.0.1 port, so the code under test
talks to a real socket (webhooks, robots, SMS gateways) from any event loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def params(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.query, keep_blank_values=True).items()}


@dataclass
class _Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"errcode":0,"errmsg":"ok"}'
    delay_s: float = 0.0


class Receiver:
    """Records requests; answers 200 ``{"errcode":0}`` unless told otherwise."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._plan: list[_Answer] = []
        self._lock = threading.Lock()
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._plan.clear()

    def fail_next(self, n: int, status: int, headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self._plan += [_Answer(status, headers or {}, b"{}") for _ in range(n)]

    def errcode_next(self, n: int, errcode: int, errmsg: str = "error") -> None:
        body = orjson.dumps({"errcode": errcode, "errmsg": errmsg})
        with self._lock:
            self._plan += [_Answer(200, {}, body) for _ in range(n)]

    def slow_next(self, delay_s: float) -> None:
        with self._lock:
            self._plan.append(_Answer(delay_s=delay_s))

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.requests.append(Received(request.method, request.url.path,
                                          request.url.query, dict(request.headers), body))
            answer = self._plan.pop(0) if self._plan else _Answer()
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return Response(answer.body, status_code=answer.status, headers=answer.headers,
                        media_type="application/json")


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 with an ephemeral port, in its own thread."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/{path:path}", receiver.endpoint, methods=["POST", "PUT"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    receiver.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
