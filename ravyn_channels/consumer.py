"""The Channels consumer generated for each ``@websocket`` route.

One connection = one consumer instance = one handler task. The consumer
reads the server's events itself: client frames go into a bounded inbox that
``WebSocket.receive_*`` reads, while broadcasts from a ``ConnectionManager``
are written straight to the client. It owns every cleanup: the handler task,
the rooms the connection joined (whatever the handler did), and Django's
database connections (closed at connect and disconnect, not per frame as
``AsyncConsumer.dispatch`` does).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from channels.db import aclose_old_connections
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings as django_settings

from . import auth, limits, metrics, ops, servers, status
from .conf import get_settings
from .denial import WebSocketDenial
from .origins import allowed_origins, origin_refusal
from .proxies import client_address
from .safetext import escape
from .watchdog import ensure_watchdog
from .websocket import (
    Message,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
    WebSocketPayloadError,
    WebSocketState,
    describe_refusal,
)

if TYPE_CHECKING:
    from .routing import WebSocketRoute

__all__ = ["NotFoundConsumer", "RavynConsumer", "build_consumer"]

logger = logging.getLogger("ravyn_channels")


class Inbox:
    """A FIFO of client frames with a soft bound: ``full()`` says when the bound is hit.

    Control messages (disconnect) are always accepted, so a full inbox can
    still tell the handler that the client has gone.
    """

    __slots__ = ("_getter", "_items", "_room", "bound")

    def __init__(self, bound: int):
        self._items: collections.deque[Message] = collections.deque()
        self._getter: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self.bound = bound

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.bound

    def put_nowait(self, message: Message) -> None:
        self._items.append(message)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    async def get(self) -> Message:
        while not self._items:
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        message = self._items.popleft()
        room = self._room
        if room is not None and not room.done() and len(self._items) < self.bound:
            room.set_result(None)
        return message

    async def wait_for_room(self) -> None:
        while self.full():
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None


def denial_of(exc: BaseException) -> Any:
    """The HTTP response a refusal asks for: its own ``response``, or that of the refusal it wraps.

    A dependency's ``WebSocketDenial`` reaches the consumer wrapped in a
    ``ParameterError`` (``raise ... from exc``), so the chain of causes is searched.
    """
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if response is not None:
            return response
        seen = seen.__cause__
    return None


def _client_repr(scope: dict[str, Any]) -> str:
    client = client_address(scope)
    return escape(f"{client[0]}:{client[1]}") if client else "?"


def query_refusal(scope: dict[str, Any]) -> str | None:
    """Why the query string is refused: more fields than Django's ``DATA_UPLOAD_MAX_NUMBER_FIELDS``."""
    limit = django_settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    query = scope.get("query_string", b"")
    if limit is None or not query:
        return None
    fields = 1 + query.count(b"&")  # what urllib.parse.parse_qsl counts
    if fields <= limit:
        return None
    return f"{fields} query parameters (DATA_UPLOAD_MAX_NUMBER_FIELDS is {limit})"


class RavynConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Runs one ``@websocket`` handler for one connection (subclassed per route)."""

    route: WebSocketRoute[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._pumping = False
        self._refused_early = False
        self._limiter: limits.MessageLimiter | None = None
        self._counts: metrics.RouteCounts | None = None
        self._opened = False
        self._accepted = False

    # -- ASGI entry point -----------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope
        self.base_send = send
        route = self.route
        # As FastAPI/Starlette set them: the matched route (``.path`` is the declared path) and its function.
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        conf = get_settings()
        self._max_size = route.max_message_size or conf.MAX_MESSAGE_SIZE
        self._overflow = route.inbox_overflow or conf.INBOX_OVERFLOW
        self.inbox = Inbox(route.inbox_size or conf.INBOX_SIZE)
        self._counts = metrics.route_counts(route.path)
        first = await receive()
        if first["type"] != "websocket.connect":
            return  # the client left before the handshake reached us
        self.inbox.put_nowait(first)
        self.websocket = ws = WebSocket(scope, self.inbox.get, self._send)
        ws.handler_name = route.qualname
        ws._on_not_accepted = self._not_accepted
        ws.consumer = self

        refusal = origin_refusal(scope, allowed_origins(route.origins)) or query_refusal(scope)
        if refusal is not None:
            logger.warning(
                "Refused websocket %s from %s: %s", escape(scope["path"]), _client_repr(scope), escape(refusal)
            )
            metrics.handshake(route.path, "refused_request")
            await send({"type": "websocket.close", "code": status.WS_1008_POLICY_VIOLATION})
            return
        refusal = await limits.handshake_refusal(scope, route.rate_limit, route.path)
        if refusal is not None:  # over a handshake rate limit: HTTP 429 (403 where the server cannot)
            metrics.handshake(route.path, "refused_rate_limit")
            await self._refuse(WebSocketDenial(429, refusal, reason=refusal))
            return
        try:  # parameters, dependencies, permissions
            kwargs = await route.admit(ws, scope.get("url_route", {}).get("kwargs", {}))
        except WebSocketException as exc:
            logger.info(
                "Refused websocket %s for %s: %s", escape(scope["path"]), route.qualname, escape(describe_refusal(exc))
            )
            metrics.handshake(route.path, "refused_permission")
            await self._refuse(exc)
            return
        except Exception:
            logger.exception("Handler %s: a dependency or permission raised; handshake refused", route.qualname)
            metrics.handshake(route.path, "refused_error")
            await send({"type": "websocket.close"})
            return
        await aclose_old_connections()
        ensure_watchdog()
        await ops.track(ws)  # closable from anywhere (ops.kick, disconnect_user, logout)
        self._limiter = limits.message_limiter(scope, route.rate_limit, route.path)
        self._task = asyncio.get_running_loop().create_task(self._run_handler(kwargs))
        self._main = asyncio.current_task()
        self._pumping = True
        try:
            await self._pump(receive)
        except asyncio.CancelledError:
            if not self._closing:
                # Not our close timer: the server is shutting down (daphne cancels apps).
                await self._going_away()
                raise
            # Our close timer: the client never answered the close frame.
            ws._client_gone(status.WS_1006_ABNORMAL_CLOSURE, "no close reply")
            self.inbox.put_nowait({"type": "websocket.disconnect", "code": status.WS_1006_ABNORMAL_CLOSURE})
        finally:
            self._pumping = False
            await self._finish()

    async def _pump(self, receive: Callable[[], Awaitable[Message]]) -> None:
        inbox = self.inbox
        ws = self.websocket
        limit = self._max_size
        counts = self._counts
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                if counts is not None:
                    counts.received += 1
                if self._closing:
                    continue  # the handler is done or we are closing: nobody reads it
                limiter = self._limiter
                if limiter is not None and not limiter.allow():
                    if not limiter.drop:
                        await ops.close_socket(ws, limiter.close_code, "rate limited")
                    continue
                text = message.get("text")
                if text is not None:
                    too_big = len(text) * 4 > limit and len(text.encode("utf-8")) > limit
                else:
                    too_big = len(message.get("bytes") or b"") > limit
                if too_big:
                    await self._refuse_frame(
                        status.WS_1009_MESSAGE_TOO_BIG,
                        f"a message over the {limit}-byte limit (max_message_size)",
                    )
                    continue
                if inbox.full():
                    if self._overflow == "backpressure":
                        await inbox.wait_for_room()
                    else:
                        metrics.event("inbox_overflows")
                        await self._refuse_frame(
                            status.WS_1013_TRY_AGAIN_LATER,
                            f"{inbox.bound} unread messages (inbox_size); the handler is not keeping up",
                        )
                        continue
                inbox.put_nowait(message)
            elif kind == "websocket.disconnect":
                ws._client_gone(message.get("code", status.WS_1006_ABNORMAL_CLOSURE), message.get("reason"))
                inbox.put_nowait(message)
                return
            else:  # not sent by real servers: the handler's receive() reports it (RuntimeError)
                inbox.put_nowait(message)

    # -- the handler task -----------------------------------------------------------------

    async def _run_handler(self, kwargs: dict[str, Any]) -> None:
        ws = self.websocket
        route = self.route
        try:
            await route.endpoint(**kwargs)
        except WebSocketDisconnect:
            pass
        except WebSocketPayloadError as exc:
            logger.warning("%s: %s Closing with %d.", route.qualname, escape(exc), exc.code)
            await self._close(exc.code)
            return
        except WebSocketException as exc:  # a refusal (e.g. check_permissions): 403 or its code
            path, why = self.scope["path"], describe_refusal(exc)
            if ws.application_state is WebSocketState.CONNECTING:
                logger.info("Refused websocket %s for %s: %s", escape(path), route.qualname, escape(why))
                await self._refuse(exc)
            else:
                logger.info(
                    "Closing websocket %s (%s) with %d: %s", escape(path), route.qualname, exc.code, escape(why)
                )
            await self._close(exc.code, exc.reason)
            return
        except Exception as exc:
            if self._refused_early and isinstance(exc, RuntimeError):
                return  # receive before accept: already refused with one WARNING
            if ws.application_state is WebSocketState.CONNECTING:
                logger.exception("Handler %s raised before accepting; handshake refused", route.qualname)
            else:
                logger.exception("Handler %s raised; closing with 1011", route.qualname)
            await self._close(status.WS_1011_INTERNAL_ERROR)
            return
        if ws.application_state is WebSocketState.CONNECTING and ws.close_code is not None:
            # The client (or the server's handshake timeout) gave up before the handler accepted.
            logger.debug("Client of %s left before the handshake was accepted", route.qualname)
        elif ws.application_state is WebSocketState.CONNECTING:
            logger.warning(
                "Handler %s returned without calling websocket.accept(); handshake refused. "
                "Call 'await websocket.accept()' before receiving or sending.",
                route.qualname,
            )
        await self._close(status.WS_1000_NORMAL_CLOSURE)

    async def _not_accepted(self, what: str) -> None:
        self._refused_early = True
        logger.warning(
            "Handler %s called %s without accepting; handshake refused. "
            "Call 'await websocket.accept()' first.",
            self.route.qualname,
            what,
        )
        await self._close(status.WS_1000_NORMAL_CLOSURE)

    # -- sending and closing -------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        counts = self._counts
        if counts is not None:
            if message["type"] == "websocket.send":
                counts.sent += 1
            elif message["type"] == "websocket.accept" and not self._opened:
                self._opened = True
                counts.open += 1
                metrics.handshake(self.route.path, "accepted")
        if message["type"] == "websocket.accept" and not self._accepted:
            self._accepted = True
            auth.start_expiry_timer(self.websocket)  # a token connection closes when its token expires
        if message["type"] == "websocket.close":
            code = message.get("code")
            if code is not None:
                message = dict(message, code=servers.close_code(code))
        await self.base_send(message)

    async def _refuse(self, exc: WebSocketException) -> None:
        """Refuse the handshake: with the refusal's HTTP response where the server can send one, else 403."""
        ws = self.websocket
        response = denial_of(exc)
        if response is not None and ws.application_state is WebSocketState.CONNECTING:
            if "websocket.http.response" in (self.scope.get("extensions") or {}):
                try:
                    await ws.send_denial_response(response)
                    return
                except WebSocketDisconnect:
                    return  # the client left while we answered
                except Exception:
                    logger.exception(
                        "Handler %s: could not send the denial response; refused with 403", self.route.qualname
                    )
                    if ws.application_state is not WebSocketState.CONNECTING:
                        return  # part of the response went out: nothing more can be sent
            else:
                logger.info(
                    "The server cannot answer the handshake with HTTP %s (no websocket denial-response "
                    "extension); refused with 403",
                    getattr(response, "status_code", "?"),
                )
        await self._close(exc.code, exc.reason)

    async def _close(self, code: int, reason: str = "") -> None:
        """Close from the server side once (before accept: refuse the handshake).

        Never raises: a transport that is already dead has nothing left to close.
        """
        ws = self.websocket
        self._closing = True
        try:
            if ws.application_state is WebSocketState.CONNECTING:
                ws.application_state = WebSocketState.DISCONNECTED
                # A server answers HTTP 403 whatever the code; an in-process test client sees it.
                await self.base_send({"type": "websocket.close", "code": code, "reason": reason})
            elif ws.application_state is WebSocketState.CONNECTED and ws.close_code is None:
                ws.application_state = WebSocketState.DISCONNECTED
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception as exc:  # the server could not write: the client has gone
            logger.debug("Close of websocket %s not sent (%r): the client has gone", escape(self.scope["path"]), exc)
            ws._client_gone(status.WS_1006_ABNORMAL_CLOSURE)
        if self._pumping and self._close_timer is None and ws.close_code is None:
            # Wait for the client's close reply, but not forever.
            main = self._main
            assert main is not None  # set before the pump starts
            self._close_timer = asyncio.get_running_loop().call_later(
                get_settings().CLOSE_TIMEOUT, main.cancel
            )

    async def _refuse_frame(self, code: int, why: str) -> None:
        logger.warning(
            "Closing websocket %s (%s) with %d: %s.", escape(self.scope["path"]), self.route.qualname, code, why
        )
        ws = self.websocket
        if ws.application_state is WebSocketState.CONNECTED and ws.close_code is None:
            ws.application_state = WebSocketState.DISCONNECTED
            try:
                await self._send({"type": "websocket.close", "code": code})
            except Exception as exc:  # the server could not write: the client has gone
                logger.debug("Close of websocket %s not sent (%r)", escape(self.scope["path"]), exc)
        ws._client_gone(code, why)
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": code})
        self._closing = True

    async def _going_away(self) -> None:
        ws = self.websocket
        if ws.application_state is WebSocketState.CONNECTED and ws.close_code is None:
            ws.application_state = WebSocketState.DISCONNECTED
            try:
                await self._send({"type": "websocket.close", "code": status.WS_1001_GOING_AWAY})
            except Exception:  # the server is going down; the close frame is best effort
                pass
        ws._client_gone(status.WS_1001_GOING_AWAY, "server shutting down")
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": status.WS_1001_GOING_AWAY})

    async def _finish(self) -> None:
        counts = self._counts
        if counts is not None:
            if self._opened:
                counts.open -= 1
            else:
                metrics.handshake(self.route.path, "refused_handler")
        if self._close_timer is not None:
            self._close_timer.cancel()
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=get_settings().DISCONNECT_GRACE)
            if not done:
                logger.warning(
                    "Handler %s was still running %.1fs after its client left; cancelled it. "
                    "Handlers should return on WebSocketDisconnect.",
                    self.route.qualname,
                    get_settings().DISCONNECT_GRACE,
                )
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._run_cleanups()
        await aclose_old_connections()

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` once when the connection ends, however it ends (used by managers)."""
        self._cleanups.append(callback)

    async def _run_cleanups(self) -> None:
        while self._cleanups:
            callback = self._cleanups.pop()
            try:
                await callback()
            except Exception:
                logger.exception("Cleanup after %s failed", self.route.qualname)


def build_consumer(route: WebSocketRoute[Any]) -> type[RavynConsumer]:
    """A ``RavynConsumer`` subclass for ``route``, named after its handler."""
    function = route.function
    base = getattr(function, "__name__", type(function).__name__)
    name = "".join(part[:1].upper() + part[1:] for part in base.split("_")) + "Consumer"
    cls = type(
        name,
        (RavynConsumer,),
        {
            "route": route,
            "__module__": getattr(function, "__module__", None) or __name__,
            "__qualname__": name,
            "__doc__": function.__doc__ or f"Consumer for {route.path}",
        },
    )
    return cls


class NotFoundConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Refuses handshakes for paths no route matches: HTTP 403 and one INFO line."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        if message["type"] == "websocket.connect":
            logger.info(
                "Refused websocket %s from %s: no route matches", escape(scope["path"]), _client_repr(scope)
            )
            await send({"type": "websocket.close"})

