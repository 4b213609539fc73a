"""One topic socket's life: the handshake, then frames routed to the topics it joined.

``serve`` is the handler of a ``TopicSocket``'s route, so the generated
consumer does for it what it does for any route (origin, permissions, size
limit, inbox, close codes, cleanups). It reads frames with a heartbeat
window and answers socket-level ones (heartbeat, malformed frames) itself; each
joined topic has a worker task that runs its join, its events in order, and
its leave, so a slow or failing handler never holds up the socket's other topics.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import status
from ..conf import get_settings
from ..history import HistoryUnavailable
from ..limits import TooManyRooms
from ..permissions import check_permissions
from ..resolver import Cleanup, run_cleanups
from ..safetext import escape
from ..websocket import WebSocket, WebSocketDisconnect, WebSocketException, WebSocketState
from . import protocol
from .handlers import Joined, TopicError
from .protocol import Frame, FrameError

if TYPE_CHECKING:
    from .registry import Topic, TopicSocket

__all__ = ["serve"]

logger = logging.getLogger("ravyn_channels")

#: Python 3.12+ starts a task's first step at once (``eager_start``): an event whose handler
#: answers without waiting is then handled without a turn of the event loop.
EAGER = sys.version_info >= (3, 12)

INTERNAL_ERROR = "internal error"


async def serve(socket: TopicSocket, websocket: WebSocket) -> None:
    """Accept a ``ravyn.topics.v1`` client and serve its frames until it leaves."""
    if protocol.PROTOCOL not in websocket.subprotocols:
        raise WebSocketException(
            reason=f"the client did not offer the {protocol.PROTOCOL!r} subprotocol (a topic socket speaks only that)"
        )
    await websocket.accept(subprotocol=protocol.PROTOCOL)
    await socket.manager.connect(websocket)
    await Session(socket, websocket).run()


@dataclass(eq=False)
class _Membership:
    """One topic this socket joined (or is joining or leaving)."""

    topic: Topic
    name: str
    params: dict[str, Any]
    state: str = "joining"  # joining | joined | leaving
    frames: collections.deque[Frame] = field(default_factory=collections.deque)
    waiter: asyncio.Future[None] | None = None  # set while the worker waits for a frame
    cleanups: list[Cleanup] = field(default_factory=list)
    previous: asyncio.Task[None] | None = None
    task: asyncio.Task[None] | None = None
    inflight: asyncio.Task[None] | None = None  # an event started at once, still running


class Session:
    """The protocol on one accepted socket."""

    def __init__(self, socket: TopicSocket, websocket: WebSocket):
        conf = get_settings()
        self.socket = socket
        self.ws = websocket
        self.heartbeat = conf.TOPICS_HEARTBEAT_TIMEOUT or None
        self.max_topics = conf.TOPICS_MAX_PER_SOCKET
        self.backlog = conf.INBOX_SIZE
        self.joined: dict[str, _Membership] = {}
        self._task: asyncio.Task[Any] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._seen = 0.0
        self._receiving = False
        self._expired = False

    async def run(self) -> None:
        ws = self.ws
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._seen = loop.time()
        if self.heartbeat:
            # One timer per socket rather than a timeout per frame (asyncio.wait_for costs more than parsing).
            self._watchdog = loop.call_later(self.heartbeat, self._watch)
        try:
            while True:
                self._receiving = True
                try:
                    message = await ws.receive()
                except asyncio.CancelledError:
                    if not self._expired:
                        raise
                    if self._task is not None:
                        self._task.uncancel()
                    await self._expire()
                    return
                finally:
                    self._receiving = False
                self._seen = loop.time()
                if message["type"] != "websocket.receive":
                    return  # websocket.disconnect
                if not await self.handle(message.get("text")):
                    return
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
            await self.close_all()

    def _watch(self) -> None:
        """The heartbeat window: stop waiting for frames once none came within it."""
        assert self.heartbeat
        loop = asyncio.get_running_loop()
        idle = loop.time() - self._seen
        if idle >= self.heartbeat and self._receiving and self._task is not None:
            self._expired = True
            self._task.cancel()
            return
        wait = self.heartbeat - idle if idle < self.heartbeat else self.heartbeat / 10  # busy with a frame
        self._watchdog = loop.call_later(wait, self._watch)

    async def _expire(self) -> None:
        ws = self.ws
        logger.info(
            "Closing topic socket %s with %d: no frame within %ss (TOPICS_HEARTBEAT_TIMEOUT).",
            escape(ws.scope["path"]),
            protocol.CLOSE_HEARTBEAT_TIMEOUT,
            self.heartbeat,
        )
        if ws.application_state is WebSocketState.CONNECTED and ws.close_code is None:
            await ws.close(protocol.CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout")

    # -- socket-level frames ----------------------------------------------------------------

    async def handle(self, text: str | None) -> bool:
        """Route one client frame; ``False`` once the socket was closed."""
        try:
            frame = protocol.parse(text)
        except FrameError as exc:
            await self.refuse(exc.topic, exc.ref, exc.reason)
            return True
        event = frame.event
        if event == "heartbeat":
            await self.reply(frame, "ok", {})
        elif event == "join":
            await self.join(frame)
        elif event == "leave":
            member = self.joined.get(frame.topic)
            if member is None or member.state == "leaving":
                await self.refuse(frame.topic, frame.ref, f"not joined to {frame.topic!r}")
            else:
                member.state = "leaving"
                self.enqueue(member, frame)
        elif event in protocol.RESERVED_EVENTS:
            await self.refuse(frame.topic, frame.ref, f"{event!r} is sent by the server, not by clients")
        else:
            member = self.joined.get(frame.topic)
            if member is None or member.state == "leaving":
                await self.refuse(frame.topic, frame.ref, f"not joined to {frame.topic!r}: send a join first")
            elif len(member.frames) >= self.backlog:
                logger.warning(
                    "Closing topic socket %s with 1013: %d unanswered frames on %r (INBOX_SIZE).",
                    escape(self.ws.scope["path"]),
                    self.backlog,
                    frame.topic,
                )
                await self.ws.close(status.WS_1013_TRY_AGAIN_LATER, "too many unanswered frames")
                return False
            elif EAGER and member.waiter is not None and member.inflight is None and not member.frames:
                # The joined topic's worker waits for a frame, nothing queued or running: nothing to keep
                # in order with (a worker woken but not yet run still holds its waiter: frames then wait).
                self.start(member, frame)
            else:
                self.enqueue(member, frame)
        return True

    def start(self, member: _Membership, frame: Frame) -> None:
        """Run an event of an idle topic at once, in its own task: one that answers without
        waiting is done before this returns; one that waits holds the topic's later frames
        (the worker waits for it) while the socket's other topics carry on."""
        task = asyncio.Task(
            self.run_event(member, frame),
            loop=asyncio.get_running_loop(),
            eager_start=True,  # Python 3.12+ (EAGER)
        )
        if not task.done():
            member.inflight = task
            task.add_done_callback(lambda _: self._settled(member, task))

    @staticmethod
    def _settled(member: _Membership, task: asyncio.Task[None]) -> None:
        if member.inflight is task:
            member.inflight = None

    async def join(self, frame: Frame) -> None:
        name = frame.topic
        current = self.joined.get(name)
        if current is not None and current.state != "leaving":
            await self.refuse(name, frame.ref, f"already joined to {name!r}")
            return
        if len(self.joined) >= self.max_topics:
            await self.refuse(name, frame.ref, f"too many topics on one socket (at most {self.max_topics})")
            return
        found = self.socket.find(name)
        if found is None:
            await self.refuse(name, frame.ref, f"unknown topic {name!r}")
            return
        topic, params = found
        member = _Membership(topic, name, params, previous=current.task if current is not None else None)
        self.joined[name] = member
        self.enqueue(member, frame)
        member.task = asyncio.get_running_loop().create_task(self.work(member))

    @staticmethod
    def enqueue(member: _Membership, frame: Frame) -> None:
        member.frames.append(frame)
        waiter = member.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- one topic --------------------------------------------------------------------------

    async def work(self, member: _Membership) -> None:
        """Run ``member``'s join, events and leave in order."""
        if member.previous is not None:  # a leave of the same topic still finishing
            await asyncio.gather(member.previous, return_exceptions=True)
        try:
            while True:
                while not member.frames:
                    member.waiter = asyncio.get_running_loop().create_future()
                    try:
                        await member.waiter
                    finally:
                        member.waiter = None
                if member.inflight is not None:  # an event started at once comes first
                    await asyncio.gather(member.inflight, return_exceptions=True)
                frame = member.frames.popleft()
                if frame.event == "join":
                    if not await self.run_join(member, frame):
                        return
                elif frame.event == "leave":
                    await self.run_leave(member)
                    await self.reply(frame, "ok", {})
                    return
                else:
                    await self.run_event(member, frame)
        finally:
            if self.joined.get(member.name) is member:
                del self.joined[member.name]
            while member.frames:  # frames that arrived for a join that was refused
                late = member.frames.popleft()
                await self.refuse(late.topic, late.ref, f"not joined to {late.topic!r}")

    async def run_join(self, member: _Membership, frame: Frame) -> bool:
        topic, ws = member.topic, self.ws
        try:
            if topic.permissions:
                await check_permissions(ws, topic.permissions)
            response = None
            if topic.join_handler is not None:
                response = await topic.join_handler.call(ws, member.params, frame.payload, member.cleanups)
        except Exception as exc:
            await self._drop_cleanups(member)
            reason = self._failure(exc, topic, "join")
            logger.info(
                "Refused join of %r on %s: %s", member.name, escape(ws.scope["path"]), escape(reason.get("reason"))
            )
            await self.reply(frame, "error", reason)
            return False
        meta = None
        if isinstance(response, Joined):
            response, meta = response.response, response.meta
        # A topic with history replays what the client missed after ``position`` (or sends a
        # resync) before the join reply, which then carries where the socket stands.
        since: Any = frame.position if topic.history is not None and frame.position is not None else None
        try:
            replay = await topic.manager.connect(
                ws, group=member.name, meta=meta if topic.presence else None, since=since
            )
        except (TooManyRooms, HistoryUnavailable) as exc:  # MAX_ROOMS_PER_CONNECTION, or Redis unreachable
            if isinstance(exc, TooManyRooms):
                refusal: dict[str, Any] = {"reason": exc.reason}
            else:
                await topic.manager.disconnect(ws, group=member.name)
                # A store that cannot be read now may be back in a moment: the clients retry that join.
                refusal = {"reason": "history unavailable: join again later", "retry": True}
            await self._drop_cleanups(member)
            logger.info("Refused join of %r on %s: %s", member.name, escape(ws.scope["path"]), refusal["reason"])
            await self.reply(frame, "error", refusal)
            return False
        member.state = "joined" if member.state == "joining" else member.state
        reply = protocol.reply_frame(frame.topic, frame.ref, "ok", {} if response is None else response)
        if replay is not None:
            reply["position"] = str(replay.position)
        await self.send(reply)
        if topic.presence:
            await topic.manager.connect(ws, group=member.name, presence=self._presence(member))
        return True

    async def run_leave(self, member: _Membership) -> None:
        await member.topic.manager.disconnect(self.ws, group=member.name)
        await self._drop_cleanups(member)

    async def run_event(self, member: _Membership, frame: Frame) -> None:
        topic = member.topic
        handler = topic.handlers.get(frame.event)
        if handler is None:
            await self.refuse(frame.topic, frame.ref, f"topic {topic.pattern!r} has no event {frame.event!r}")
            return
        try:
            result = await handler.call(self.ws, member.params, frame.payload)
        except WebSocketDisconnect:
            return
        except Exception as exc:
            await self.reply_error(frame, self._failure(exc, topic, f"event {frame.event!r}", handler.qualname))
            return
        if frame.ref is not None:
            await self.reply(frame, "ok", {} if result is None else result)

    def _failure(self, exc: Exception, topic: Topic, what: str, where: str | None = None) -> dict[str, Any]:
        """The error response for an exception of a join or event handler (logged when unexpected)."""
        if isinstance(exc, TopicError):
            return exc.response()
        if isinstance(exc, WebSocketException):  # PermissionRefused, ParameterError, a refusal of a dependency
            return {"reason": exc.reason or "refused"}
        from django.core.exceptions import PermissionDenied

        if isinstance(exc, PermissionDenied):
            return {"reason": "permission denied"}
        handler = where or (topic.join_handler.qualname if topic.join_handler else repr(topic))
        logger.error("Topic %r %s: %s raised; replied %r", topic.pattern, what, handler, INTERNAL_ERROR, exc_info=exc)
        return {"reason": INTERNAL_ERROR}

    def _presence(self, member: _Membership) -> Any:
        me = protocol.member_id(self.ws.connection_id or "")

        async def forward(change: dict[str, Any]) -> None:
            await self.send(protocol.message_frame(member.name, "presence", protocol.public_presence(change, me)))

        return forward

    async def _drop_cleanups(self, member: _Membership) -> None:
        cleanups, member.cleanups = member.cleanups, []
        try:
            await run_cleanups(cleanups)
        except Exception:
            logger.exception("Cleanup of a dependency of topic %r failed", member.name)

    # -- sending ----------------------------------------------------------------------------

    async def send(self, frame: dict[str, Any]) -> None:
        """Write one frame; a client that has gone is not an error here."""
        try:
            text = protocol.encode(frame)
        except (TypeError, ValueError) as exc:
            text = self._unencodable(frame.get("topic"), frame.get("ref"), exc)
        await self.send_text(text)

    async def send_text(self, text: str) -> None:
        """Write one encoded frame; a client that has gone is not an error here."""
        ws = self.ws
        if ws.close_code is not None or ws.application_state is not WebSocketState.CONNECTED:
            return
        try:
            await ws.send_text(text)
        except WebSocketDisconnect:
            pass

    @staticmethod
    def _unencodable(topic: str | None, ref: protocol.Ref | None, exc: Exception) -> str:
        logger.error("Topic %r: a reply is not JSON serialisable (%s); replied %r", topic, exc, INTERNAL_ERROR)
        return protocol.reply_text(topic or "", ref, "error", {"reason": INTERNAL_ERROR})

    async def reply(self, frame: Frame, status_: str, response: Any) -> None:
        try:
            text = protocol.reply_text(frame.topic, frame.ref, status_, response)
        except (TypeError, ValueError) as exc:
            text = self._unencodable(frame.topic, frame.ref, exc)
        await self.send_text(text)

    async def reply_error(self, frame: Frame, response: dict[str, Any]) -> None:
        if frame.ref is not None:
            await self.reply(frame, "error", response)
        else:
            await self.send(protocol.error_frame(frame.topic, str(response.get("reason")), None))

    async def refuse(self, topic: str | None, ref: protocol.Ref | None, reason: str) -> None:
        """A reply with status error when the frame had a ``ref``, else an ``error`` event."""
        if ref is not None:
            await self.send(protocol.reply_frame(topic or "", ref, "error", {"reason": reason}))
        else:
            await self.send(protocol.error_frame(topic, reason))

    async def close_all(self) -> None:
        """The socket is closing: stop every topic's worker and exit its dependencies."""
        members = list(self.joined.values())
        tasks = [t for m in members for t in (m.inflight, m.task) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for member in members:
            await self._drop_cleanups(member)
        self.joined.clear()
