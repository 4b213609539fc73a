"""An asyncio client for topic sockets (``ravyn.topics.v1``), for scripts, bots and tests.

    from ravyn_channels.client import Socket

    async with Socket("ws://localhost:8000/live", token=token) as socket:
        room = socket.channel("room:42")
        room.on("message", lambda payload: print(payload))
        await room.join({"nick": "bot"})
        await room.push("message", {"text": "hello"})          # the handler's reply

The socket reconnects by itself (exponential backoff with jitter) and rejoins
every topic it had joined; it does not retry after a refused handshake or a
policy close (1008). On a topic with history the channel keeps the last
``position`` it received and sends it when it rejoins: the server replays what
was missed, in order, once, or pushes a ``resync`` event (``room.on("resync", ...)``)
when it cannot, so the application reloads its state. Heartbeats keep it alive and detect a dead connection.
Needs the ``websockets`` package (``pip install ravyn-channels[client]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections.abc import Callable
from typing import Any

from .client_channel import Channel
from .topics.protocol import PROTOCOL, SOCKET_TOPIC, ReplyError

__all__ = ["Channel", "HandshakeRefused", "ReplyError", "Socket", "backoff_delay"]

logger = logging.getLogger("ravyn_channels.client")

#: Close codes after which the client does not reconnect (policy violation: refused by the server).
NO_RETRY_CODES = frozenset({1008})


class HandshakeRefused(ConnectionError):
    """The server refused the websocket handshake (HTTP ``status``); the client does not retry."""

    def __init__(self, url: str, status: int | None):
        self.status = status
        super().__init__(f"handshake to {url} refused (HTTP {status})")


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before reconnect ``attempt`` (1, 2, ...): ``base·2^(attempt-1)`` capped, half of it random."""
    ceiling = min(cap, base * float(2 ** max(0, attempt - 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class Socket:
    """One connection to a topic socket, kept open until ``close()``.

    ``token`` is sent as the ``["bearer", token]`` subprotocol pair;
    ``timeout`` bounds each reply; ``heartbeat`` is the seconds between
    heartbeats (a heartbeat unanswered by the next one drops the connection,
    which then reconnects); ``reconnect=False`` gives up at the first close.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        origin: str | None = None,
        timeout: float = 10.0,
        heartbeat: float = 30.0,
        reconnect: bool = True,
        backoff: Callable[[int], float] = backoff_delay,
    ):
        self.url = url
        self.token = token
        self.headers = headers
        self.origin = origin
        self.timeout = timeout
        self.heartbeat = heartbeat
        self.reconnect = reconnect
        self.backoff = backoff
        self.channels: dict[str, Channel] = {}
        #: Successful connections so far (1 after the first, +1 per reconnect).
        self.connections = 0
        #: Why the socket stopped for good (a refused handshake, a policy close), if it did.
        self.error: BaseException | None = None
        self._ws: Any = None
        self._refs = itertools.count(1)
        self._replies: dict[str, asyncio.Future[Any]] = {}
        self._open = asyncio.Event()
        self._stopped = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None

    # -- life -------------------------------------------------------------------------------

    async def connect(self) -> Socket:
        """Open the connection (the first attempt's failure is raised); later drops reconnect by themselves."""
        if self._runner is None:
            first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._runner = asyncio.get_running_loop().create_task(self._run(first))
            await first
        return self

    async def close(self) -> None:
        """Close the connection and stop reconnecting."""
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        self._fail_replies(ConnectionError("socket closed"))

    async def __aenter__(self) -> Socket:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._open.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the socket is open (again)."""
        async with asyncio.timeout(timeout if timeout is not None else self.timeout):
            await self._open.wait()

    def channel(self, topic: str) -> Channel:
        """The ``Channel`` for ``topic`` (one per topic per socket)."""
        channel = self.channels.get(topic)
        if channel is None:
            channel = self.channels[topic] = Channel(self, topic)
        return channel

    async def _open_connection(self) -> Any:
        try:
            from websockets.asyncio.client import connect
            from websockets.exceptions import InvalidStatus
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "ravyn_channels.client needs the websockets package: pip install 'ravyn-channels[client]'"
            ) from exc
        protocols: list[Any] = [PROTOCOL]
        if self.token:
            protocols += ["bearer", self.token]
        try:
            ws = await connect(
                self.url,
                subprotocols=protocols,
                additional_headers=self.headers,
                origin=self.origin,  # type: ignore[arg-type]
                open_timeout=self.timeout,
                ping_interval=None,
                max_size=None,
            )
        except InvalidStatus as exc:
            raise HandshakeRefused(self.url, exc.response.status_code) from None
        if ws.subprotocol != PROTOCOL:
            await ws.close()
            raise HandshakeRefused(self.url, None)
        return ws

    async def _run(self, first: asyncio.Future[None]) -> None:
        attempt = 0
        while True:
            try:
                ws = await self._open_connection()
            except HandshakeRefused as exc:
                self._stop(exc, first)
                return
            except Exception as exc:  # refused connection, timeout, server restarting mid-handshake
                if not first.done():
                    self._stop(exc, first)
                    return
                attempt += 1
                await asyncio.sleep(self.backoff(attempt))
                continue
            attempt = 0
            self._ws = ws
            self.connections += 1
            self._open.set()
            if not first.done():
                first.set_result(None)
            code = await self._serve(ws)
            self._open.clear()
            self._ws = None
            self._fail_replies(ConnectionError(f"connection closed ({code}) before the reply"))
            if self._closing or not self.reconnect or code in NO_RETRY_CODES:
                self._stop(ConnectionError(f"closed by the server with {code}") if not self._closing else None, first)
                return
            attempt += 1
            await asyncio.sleep(self.backoff(attempt))

    def _stop(self, error: BaseException | None, first: asyncio.Future[None]) -> None:
        self.error = error
        self._stopped.set()
        if not first.done():
            if error is not None:
                first.set_exception(error)
            else:
                first.set_result(None)
        for channel in self.channels.values():
            if channel.state != "closed":
                channel.state = "errored"

    async def _serve(self, ws: Any) -> int | None:
        """Read frames until the connection ends; rejoin and heartbeat meanwhile. Returns the close code."""
        loop = asyncio.get_running_loop()
        helpers = [loop.create_task(self._rejoin()), loop.create_task(self._beat(ws))]
        try:
            async for text in ws:
                try:
                    frame = json.loads(text)
                except (TypeError, ValueError):
                    continue
                await self._on_frame(frame)
        except Exception as exc:  # ConnectionClosedError and transport errors end this connection
            logger.debug("Connection to %s ended: %r", self.url, exc)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        code: int | None = ws.close_code
        return code

    async def _rejoin(self) -> None:
        pending = [c for c in self.channels.values() if c.state in ("joined", "errored") and c.joins]
        attempt = 0
        while pending:
            later = []
            for channel in pending:
                try:
                    await channel._join(None)
                    channel.state = "joined"
                    channel.joins += 1
                except ReplyError as exc:
                    channel.state = "errored"
                    if exc.retry:  # e.g. the history store is unreachable for a moment: try again
                        later.append(channel)
                        logger.info("Rejoin of %r failed (%s); retrying", channel.topic, exc.reason)
                    else:
                        logger.warning("Rejoin of %r refused: %s", channel.topic, exc.reason)
                except (ConnectionError, TimeoutError):
                    return  # the connection dropped again; the next one rejoins
            pending = later
            if pending:
                attempt += 1
                await asyncio.sleep(self.backoff(attempt))

    async def _beat(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self._request(SOCKET_TOPIC, "heartbeat", {}, self.heartbeat)
            except (TimeoutError, ReplyError):
                logger.warning("No heartbeat reply from %s within %ss; reconnecting", self.url, self.heartbeat)
                await ws.close(4000, "heartbeat timeout")  # the read loop ends and reconnects
                return
            except ConnectionError:
                return

    async def _on_frame(self, frame: Any) -> None:
        if not isinstance(frame, dict):
            return
        if frame.get("event") == "reply":
            future = self._replies.pop(str(frame.get("ref")), None)
            if future is not None and not future.done():
                future.set_result(frame)
            return
        channel = self.channels.get(str(frame.get("topic")))
        if channel is not None:
            await channel._dispatch(frame)
        elif frame.get("event") == "error":
            logger.warning("Server error on %r: %s", frame.get("topic"), (frame.get("payload") or {}).get("reason"))

    # -- frames -----------------------------------------------------------------------------

    async def _send(self, frame: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            await self.wait_connected()
            ws = self._ws
        try:
            await ws.send(json.dumps(frame, separators=(",", ":")))
        except Exception as exc:
            raise ConnectionError(f"could not send on {self.url}: {exc!r}") from None

    async def _request(
        self,
        topic: str,
        event: str,
        payload: Any,
        timeout: float | None,
        extra: dict[str, Any] | None = None,
        whole: bool = False,
    ) -> Any:
        """Send a frame (plus ``extra`` top-level keys); the reply's response (``whole``: the reply frame)."""
        if self._stopped.is_set():
            raise ConnectionError(f"socket to {self.url} is closed: {self.error}")
        ref = str(next(self._refs))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies[ref] = future
        try:
            async with asyncio.timeout(timeout if timeout is not None else self.timeout):
                await self._send({"topic": topic, "event": event, "payload": payload, "ref": ref, **(extra or {})})
                frame = await future
        finally:
            self._replies.pop(ref, None)
        reply = frame.get("payload") or {}
        if reply.get("status") != "ok":
            raise ReplyError(topic, event, reply.get("response"))
        return frame if whole else reply.get("response")

    def _fail_replies(self, error: BaseException) -> None:
        replies, self._replies = self._replies, {}
        for future in replies.values():
            if not future.done():
                future.set_exception(error)

    def __repr__(self) -> str:
        return f"<Socket {self.url!r} {'open' if self.connected else 'closed'} channels={list(self.channels)!r}>"
