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

__all__ = ["HandshakeRefused", "TopicTestClient", "WebSocketTestSession", "connect", "topic_client"]

HeadersArg = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]] | None


class HandshakeRefused(WebSocketDisconnect):
    """The application refused the handshake; ``status_code`` is the HTTP status a real server sends.

    ``code`` and ``reason`` are those of the application's close, as FastAPI's
    test client reports them in its ``WebSocketDisconnect``: 1008 for a refusal
    by a dependency, a parameter or a permission. A denial response
    (``send_denial_response``, ``WebSocketDenial``) sets ``status_code``,
    ``headers`` (lower-case ``bytes`` pairs) and ``body``; a plain refusal is 403.
    """

    def __init__(
        self,
        path: str,
        code: int,
        reason: str | None = None,
        *,
        status_code: int = 403,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
    ):
        self.path = path
        self.status_code = status_code
        self.headers = headers or []
        self.body = body
        super().__init__(code, reason)

    def __str__(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"handshake for {self.path!r} was refused (HTTP {self.status_code}, close {self.code}{why})"

    def json(self) -> Any:
        """The denial response's body decoded as JSON."""
        return json.loads(self.body)


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
    # As uvicorn and daphne (adapted) do: handlers may answer the handshake with an HTTP response.
    communicator.scope.setdefault("extensions", {"websocket.http.response": {}})
    if scope:
        communicator.scope.update(scope)
    await communicator.send_input({"type": "websocket.connect"})
    answer = await communicator.receive_output(timeout)
    if answer["type"] != "websocket.accept":
        refused = HandshakeRefused(path, answer.get("code") or 1000, answer.get("reason"))
        if answer["type"] == "websocket.http.response.start":
            refused = HandshakeRefused(
                path, 1006, status_code=answer["status"], headers=list(answer.get("headers", []))
            )
            more = True
            while more:
                part = await communicator.receive_output(timeout)
                refused.body += part.get("body", b"")
                more = part.get("more_body", False)
        elif answer["type"] != "websocket.close":
            raise AssertionError(f"expected websocket.accept or websocket.close, got {answer!r}")
        await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
        await communicator.wait(timeout)
        raise refused
    session = WebSocketTestSession(communicator, timeout)
    session.subprotocol = answer.get("subprotocol")
    session.response_headers = list(answer.get("headers") or [])
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


class TopicTestClient:
    """A ``ravyn.topics.v1`` client over a test connection: join, push, and read pushes.

    ``join``/``leave``/``push`` wait for the reply and return its ``response``
    (or raise ``ReplyError``); pushes that arrive meanwhile are kept for
    ``receive``.
    """

    def __init__(self, session: WebSocketTestSession):
        self.session = session
        self._refs = 0
        #: Frames read but not asked for yet (pushes, presence, errors), oldest first.
        self.pending: list[dict[str, Any]] = []

    async def send_frame(self, topic: str, event: str, payload: Any = None, ref: Any = None) -> None:
        """Send one frame as it is (no waiting for a reply)."""
        frame: dict[str, Any] = {"topic": topic, "event": event, "payload": {} if payload is None else payload}
        if ref is not None:
            frame["ref"] = ref
        await self.session.send_json(frame)

    async def request(self, topic: str, event: str, payload: Any = None, timeout: float | None = None) -> Any:
        """Send ``event`` with a new ``ref`` and return the reply's payload (``{"status", "response"}``)."""
        self._refs += 1
        ref = str(self._refs)
        await self.send_frame(topic, event, payload, ref)
        while True:
            frame = await self.session.receive_json(timeout=timeout)
            if frame.get("event") == "reply" and frame.get("ref") == ref:
                return frame["payload"]
            self.pending.append(frame)

    async def _call(self, topic: str, event: str, payload: Any) -> Any:
        from .topics.protocol import ReplyError

        reply = await self.request(topic, event, payload)
        if reply.get("status") != "ok":
            raise ReplyError(topic, event, reply.get("response"))
        return reply.get("response")

    async def join(self, topic: str, payload: Any = None) -> Any:
        """Join ``topic``; the join handler's reply, or ``ReplyError`` when refused."""
        return await self._call(topic, "join", payload)

    async def leave(self, topic: str) -> Any:
        """Leave ``topic``."""
        return await self._call(topic, "leave", None)

    async def push(self, topic: str, event: str, payload: Any = None) -> Any:
        """Send ``event`` and return the handler's reply (``ReplyError`` for an error reply)."""
        return await self._call(topic, event, payload)

    async def receive(
        self, topic: str | None = None, event: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """The next frame from the server matching ``topic`` and ``event`` (whole frame)."""

        def wanted(frame: dict[str, Any]) -> bool:
            return (topic is None or frame.get("topic") == topic) and (event is None or frame.get("event") == event)

        for index, frame in enumerate(self.pending):
            if wanted(frame):
                return self.pending.pop(index)
        while True:
            received: dict[str, Any] = await self.session.receive_json(timeout=timeout)
            if wanted(received):
                return received
            self.pending.append(received)

    async def receive_nothing(self, timeout: float = 0.1) -> bool:
        """True if no frame is waiting and none arrives within ``timeout`` seconds."""
        return not self.pending and await self.session.receive_nothing(timeout)


@asynccontextmanager
async def topic_client(
    socket: Any,
    *,
    headers: HeadersArg = None,
    subprotocols: Iterable[str] = (),
    scope: Mapping[str, Any] | None = None,
    timeout: float = 5.0,
) -> AsyncIterator[TopicTestClient]:
    """Open a ``TopicTestClient`` to a ``TopicSocket`` (or any app, with ``socket.path``), in-process.

        async with topic_client(live) as client:
            assert await client.join("room:1") == {}
            await client.push("room:1", "message", {"text": "hi"})
            assert (await client.receive("room:1", "message"))["payload"] == {"text": "hi"}
    """
    from .topics.protocol import PROTOCOL

    app, path = (socket.route, socket.path) if hasattr(socket, "route") else socket
    async with connect(
        app, path, headers=headers, subprotocols=[PROTOCOL, *subprotocols], scope=scope, timeout=timeout
    ) as session:
        yield TopicTestClient(session)
