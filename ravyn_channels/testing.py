"""A test client for websocket handlers, built on Channels' ``WebsocketCommunicator``.

    from ravyn_channels.testing import connect

    async def test_echo():
        async with connect(chat_socket, "/ws/42") as ws:
            await ws.send_text("hi")
            assert await ws.receive_text() == "Message from 42: hi"

No server or network is involved: the application runs in the test's event
loop, with the project's settings (channel layer, auth, origins).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import urlsplit

from channels.testing import WebsocketCommunicator

from .routing import WebSocketRoute
from .websocket import WebSocketDisconnect

__all__ = ["HandshakeRefused", "WebSocketTestSession", "connect"]

HeadersArg = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]] | None


class HandshakeRefused(WebSocketDisconnect):
    """The application refused the handshake (a real server answers HTTP 403).

    ``code`` and ``reason`` are those of the application's close, as
    FastAPI's test client reports them in its ``WebSocketDisconnect``: 1008
    for a refusal by a dependency, a parameter or a permission.
    """

    def __init__(self, path: str, code: int, reason: str | None = None):
        self.path = path
        super().__init__(code, reason)

    def __str__(self) -> str:
        return f"handshake for {self.path!r} was refused ({self.code}{': ' + self.reason if self.reason else ''})"


def _raw_headers(headers: HeadersArg) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [
        (
            (k if isinstance(k, bytes) else k.encode("latin-1")).lower(),
            v if isinstance(v, bytes) else v.encode("latin-1"),
        )
        for k, v in items
    ]


class WebSocketTestSession:
    """The client side of one test connection (``send_*``, ``receive_*``, ``close``)."""

    def __init__(self, communicator: WebsocketCommunicator, timeout: float):
        self._comm = communicator
        self.timeout = timeout
        #: The subprotocol the handler accepted, if any.
        self.subprotocol: str | None = None
        #: Headers the handler sent with ``accept``.
        self.response_headers: list[tuple[bytes, bytes]] = []
        #: The close code once the server has closed the connection.
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._closed = False

    # -- sending --------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """Send a raw ASGI message to the application."""
        await self._comm.send_input(message)

    async def send_text(self, data: str) -> None:
        await self.send({"type": "websocket.receive", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self.send({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        text = json.dumps(data)
        if mode == "text":
            await self.send_text(text)
        else:
            await self.send_bytes(text.encode("utf-8"))

    # -- receiving ------------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> dict[str, Any]:
        """The next raw message the application sent (``websocket.send`` or ``.close``)."""
        message: dict[str, Any] = await self._comm.receive_output(timeout or self.timeout)
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            self.close_reason = message.get("reason") or ""
        return message

    async def _receive_frame(self, timeout: float | None) -> dict[str, Any]:
        message = await self.receive(timeout)
        if message["type"] == "websocket.close":
            raise WebSocketDisconnect(self.close_code or 1000, self.close_reason)
        return message

    async def receive_text(self, timeout: float | None = None) -> str:
        """The next text frame; ``WebSocketDisconnect`` if the server closed instead."""
        message = await self._receive_frame(timeout)
        if message.get("text") is None:
            raise AssertionError(f"expected a text frame, got {message!r}")
        return str(message["text"])

    async def receive_bytes(self, timeout: float | None = None) -> bytes:
        """The next binary frame; ``WebSocketDisconnect`` if the server closed instead."""
        message = await self._receive_frame(timeout)
        if message.get("bytes") is None:
            raise AssertionError(f"expected a binary frame, got {message!r}")
        return bytes(message["bytes"])

    async def receive_json(self, mode: Literal["text", "binary"] = "text", timeout: float | None = None) -> Any:
        """The next frame decoded as JSON."""
        if mode == "text":
            return json.loads(await self.receive_text(timeout))
        return json.loads(await self.receive_bytes(timeout))

    async def receive_nothing(self, timeout: float = 0.1) -> bool:
        """True if the application sends nothing within ``timeout`` seconds."""
        return bool(await self._comm.receive_nothing(timeout))

    async def wait_closed(self, timeout: float | None = None) -> int:
        """Read until the server closes; returns the close code."""
        while self.close_code is None:
            await self.receive(timeout)
        return self.close_code

    # -- closing --------------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close from the client side (the handler's ``WebSocketDisconnect`` gets ``code`` and ``reason``)
        and wait for the application to finish."""
        if self._closed:
            return
        self._closed = True
        await self._comm.send_input({"type": "websocket.disconnect", "code": code, "reason": reason or ""})
        await self._comm.wait(self.timeout)


@asynccontextmanager
async def connect(
    app: Any,
    path: str,
    *,
    headers: HeadersArg = None,
    subprotocols: Iterable[str] | None = None,
    scope: Mapping[str, Any] | None = None,
    timeout: float = 5.0,
) -> AsyncIterator[WebSocketTestSession]:
    """Open a test websocket to ``app`` at ``path`` (``"/ws/42?token=x"``).

    ``app`` is a ``@websocket`` route, a ``Ravyn`` app or any ASGI application
    (``get_asgi_application()``). ``scope`` adds keys to the ASGI scope (e.g.
    ``{"client": ("10.0.0.1", 5000)}``). A refused handshake raises
    ``HandshakeRefused``; the connection is closed when the block ends.
    """
    if isinstance(app, WebSocketRoute):
        from .asgi import websocket_application

        app = websocket_application([app])
    communicator = WebsocketCommunicator(
        app, path, headers=_raw_headers(headers), subprotocols=list(subprotocols or [])
    )
    communicator.scope.setdefault("client", ("127.0.0.1", 50000))
    communicator.scope.setdefault("server", ("testserver", 80))
    communicator.scope.setdefault("raw_path", urlsplit(path).path.encode("latin-1", "replace"))
    if scope:
        communicator.scope.update(scope)
    await communicator.send_input({"type": "websocket.connect"})
    reply = await communicator.receive_output(timeout)
    if reply["type"] == "websocket.close":
        await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
        await communicator.wait(timeout)
        raise HandshakeRefused(path, reply.get("code") or 1000, reply.get("reason"))
    if reply["type"] != "websocket.accept":
        raise AssertionError(f"expected websocket.accept or websocket.close, got {reply!r}")
    session = WebSocketTestSession(communicator, timeout)
    session.subprotocol = reply.get("subprotocol")
    session.response_headers = list(reply.get("headers") or [])
    try:
        yield session
    finally:
        if not session._closed:
            if session.close_code is None:
                await session.close()
            else:
                session._closed = True
                await communicator.send_input({"type": "websocket.disconnect", "code": session.close_code})
                await communicator.wait(timeout)
