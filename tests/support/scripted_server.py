"""A tiny real HTTP server for tests, whose answers are scripted per path and which records every request.

A starlette ``Request`` over a bare ASGI callable, served by uvicorn in a background thread on a free port
of 127.0.0.1: the client under test speaks real HTTP/1.1 over real sockets, no mocks of httpx.

    with ScriptedServer() as server:
        server.script("/api/projects/1/insights/", Reply(502), Reply(200, body={"results": []}))
        ...  # point the client at server.url
        assert len(server.requests_to("/api/projects/1/insights/")) == 2

A step is a ``Reply``, a ``(status, headers, body)`` tuple, a ``Drop`` (declares a longer Content-Length
than it sends, then the connection closes: the client sees a broken body), or a handler
``(request) -> step`` (sync or async; it may sleep to provoke a read timeout). Each path has a queue of
steps used once each, then an optional standing step (``always``), then the server-wide ``fallback``
(default: a PostHog-style 404).
"""

from __future__ import annotations

import inspect
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


@dataclass(frozen=True)
class Reply:
    """An HTTP response. ``body``: bytes/str as is, anything else JSON-encoded (``None``: empty)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Drop:
    """Send the status line, a ``Content-Length`` of ``declared_length`` and only ``partial``; then close."""

    status: int = 200
    partial: bytes = b'{"count": 3, "results": [{"id"'
    declared_length: int = 10_000


Step = Reply | Drop | tuple[int, Mapping[str, str], Any] | Callable[[Request], Any]


class _DroppedOnPurpose(Exception):
    """Raised after a partial body so that uvicorn drops the connection (and is not logged)."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DroppedOnPurpose))


_QUIET_DROPS = _QuietDrops()


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    at: float  # time.monotonic() when the server received it

    @property
    def params(self) -> dict[str, str]:
        """Query parameters, last value of each."""
        return {
            name: values[-1] for name, values in parse_qs(self.query_string, keep_blank_values=True).items()
        }

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query_string}" if self.query_string else self.path


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, dict(headers or {}), body)


def error_reply(status: int, code: str, detail: str, type_: str = "invalid_request") -> Reply:
    """PostHog's error body ``{type, code, detail, attr}``."""
    return Reply(status, {}, {"type": type_, "code": code, "detail": detail, "attr": None})


class ScriptedServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Step]] = {}
        self._standing: dict[str, Step] = {}
        self.fallback: Step = lambda request: error_reply(
            404, "not_found", f"nothing scripted for {request.url.path}"
        )
        self.requests: list[RecordedRequest] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    # -- scripting ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The origin, e.g. ``http://127.0.0.1:54321``."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, *steps: Step) -> None:
        """Queue steps for ``path``; each answers one request, in order."""
        with self._lock:
            self._queues.setdefault(path, deque()).extend(steps)

    def always(self, path: str, step: Step) -> None:
        """Answer every request to ``path`` with ``step`` once its queue is empty."""
        with self._lock:
            self._standing[path] = step

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _next_step(self, path: str) -> Step:
        with self._lock:
            queue = self._queues.get(path)
            if queue:
                return queue.popleft()
            return self._standing.get(path, self.fallback)

    # -- ASGI --------------------------------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        await request.body()
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.url.path,
                    query_string=scope.get("query_string", b"").decode("latin-1"),
                    headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
                    at=time.monotonic(),
                )
            )
        step: Any = self._next_step(request.url.path)
        while callable(step):
            step = step(request)
            if inspect.isawaitable(step):
                step = await step
        if isinstance(step, tuple):
            step = Reply(*step)
        if isinstance(step, Drop):
            await send(
                {
                    "type": "http.response.start",
                    "status": step.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(step.declared_length).encode()),
                    ],
                }
            )
            # Send part of the body, then fail: uvicorn closes the connection mid-body.
            await send({"type": "http.response.body", "body": step.partial, "more_body": True})
            raise _DroppedOnPurpose
        if not isinstance(step, Reply):
            raise TypeError(f"not a step: {step!r}")
        await _to_response(step)(scope, receive, send)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            interface="asgi3",
            proxy_headers=False,
            ws="none",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        uvicorn_log = logging.getLogger("uvicorn.error")
        if _QUIET_DROPS not in uvicorn_log.filters:
            uvicorn_log.addFilter(_QUIET_DROPS)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="scripted-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("scripted server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _to_response(reply: Reply) -> Response:
    headers = dict(reply.headers)
    body = reply.body
    if body is None:
        content = b""
    elif isinstance(body, bytes):
        content = body
    elif isinstance(body, str):
        content = body.encode()
    else:
        content = orjson.dumps(body)
        if not any(name.lower() == "content-type" for name in headers):
            headers["content-type"] = "application/json"
    return Response(content=content, status_code=reply.status, headers=headers)


def page(
    results: list[dict[str, Any]], next_url: str | None = None, count: int | None = None
) -> dict[str, Any]:
    """A DRF limit/offset page."""
    return {
        "count": len(results) if count is None else count,
        "next": next_url,
        "previous": None,
        "results": results,
    }


__all__ = [
    "Drop",
    "RecordedRequest",
    "Reply",
    "ScriptedServer",
    "Step",
    "error_reply",
    "json_reply",
    "page",
]
