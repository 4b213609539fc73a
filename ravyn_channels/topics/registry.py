"""Declaring topics: ``TopicSocket`` (one websocket path) and its ``Topic`` patterns.

    live = TopicSocket("/live")
    room = live.topic("room:{room_id:int}", presence=True)

    @room.on_join
    async def join(room_id: int, user: User, payload: JoinRequest) -> dict: ...

    @room.on("message")
    async def message(websocket: WebSocket, room_id: int, payload: Message) -> None:
        await room.broadcast(room_id, "message", payload, exclude=websocket)

A topic's members are a room of the topic's ``ConnectionManager`` (named
after the socket's path and the pattern), so broadcasts reach every process
and presence works per topic, through the same path as any room.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from django.urls.resolvers import RoutePattern

from ..history import HistoryConfig
from ..manager import ConnectionManager
from ..params import Inject
from ..permissions import Permission, permission_list
from ..routing import WebSocketRoute, compile_path, websocket
from ..websocket import WebSocket
from . import protocol
from .handlers import TopicHandler

__all__ = ["Topic", "TopicSocket"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
_RESERVED_PARAMS = frozenset({"event", "payload", "exclude", "history"})
#: Topic names a ``Topic`` keeps per parameter values (broadcasts to the same topics skip formatting).
_NAMES_CACHED = 1024


class Topic:
    """A topic pattern (``"room:{room_id:int}"``) with its join and event handlers."""

    def __init__(
        self,
        socket: TopicSocket,
        pattern: str,
        *,
        presence: bool = False,
        permissions: Sequence[Any] | None = None,
        history: HistoryConfig | None = None,
    ):
        where = f"topic {pattern!r}"
        if history is not None and not isinstance(history, HistoryConfig):
            raise TypeError(
                f"{where}: history={history!r}; give a HistoryConfig(max_messages=..., max_age=..., on_join=...) "
                "or None."
            )
        if not isinstance(pattern, str) or not pattern or pattern.startswith("/"):
            raise ValueError(f"{where}: a topic pattern is a non-empty string such as 'room:{{room_id:int}}'.")
        if pattern == protocol.SOCKET_TOPIC:
            raise ValueError(f"{where}: {protocol.SOCKET_TOPIC!r} is the socket's own topic; choose another name.")
        route, self.param_types = compile_path("/" + pattern, where)
        clash = _RESERVED_PARAMS & set(self.param_types)
        if clash:
            raise ValueError(f"{where}: rename parameter {sorted(clash)[0]!r}; it is a keyword of broadcast().")
        self.socket = socket
        self.pattern = pattern
        self.route = route
        self.params = tuple(self.param_types)
        self._matcher = RoutePattern(route, is_endpoint=True)
        self.presence = presence
        self.permissions: tuple[Permission, ...] = permission_list(permissions, where)
        self.join_handler: TopicHandler | None = None
        self.handlers: dict[str, TopicHandler] = {}
        #: The topic's history (``None``: its pushes carry no position and are not kept).
        self.history = None if history is None else dataclasses.replace(history, envelope=protocol.history_frame)
        self.manager = ConnectionManager(
            f"ravyn.topics:{socket.path}#{pattern}", presence=presence, history=self.history
        )
        self._names: dict[tuple[Any, ...], str] = {}  # name() of positional parameters

    # -- declaring --------------------------------------------------------------------------

    def on_join(self, func: F) -> F:
        """Declare the join handler: it authorizes (raise ``TopicError`` to refuse) and may return a reply."""
        if self.join_handler is not None:
            raise ValueError(f"topic {self.pattern!r} already has a join handler ({self.join_handler.qualname}).")
        self.join_handler = TopicHandler(func, self.param_types, "join")
        return func

    def on(self, event: str) -> Callable[[F], F]:
        """Declare the handler of ``event``; its return value is the reply's ``response``."""
        if not isinstance(event, str) or not event or len(event) > protocol.MAX_NAME:
            raise ValueError(f"topic {self.pattern!r}: an event name is a non-empty string, got {event!r}.")
        if event in protocol.RESERVED_EVENTS:
            raise ValueError(
                f"topic {self.pattern!r}: {event!r} is a reserved event "
                f"({', '.join(sorted(protocol.RESERVED_EVENTS))}); use on_join for joins, or another name."
            )

        def decorate(func: F) -> F:
            if event in self.handlers:
                raise ValueError(
                    f"topic {self.pattern!r}: event {event!r} already has a handler ({self.handlers[event].qualname})."
                )
            self.handlers[event] = TopicHandler(func, self.param_types, f"event {event!r}")
            return func

        return decorate

    # -- names ------------------------------------------------------------------------------

    def match(self, name: str) -> dict[str, Any] | None:
        """The parameters of topic ``name`` if this pattern matches it, else ``None``."""
        found = self._matcher.match(name)
        return None if found is None else dict(found[2])

    def name(self, *args: Any, **params: Any) -> str:
        """The topic name for these parameters: ``room.name(42) == "room:42"``."""
        if params or len(args) != len(self.params):
            return self._format(self._values(args, params))
        key = (*args, *map(type, args))  # 1 and True are equal keys: their names are not
        try:
            return self._names[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value: not cached
            return self._format(self._values(args, params))
        text = self._format(self._values(args, params))
        if len(self._names) >= _NAMES_CACHED:
            self._names.clear()
        self._names[key] = text
        return text

    def _values(self, args: Sequence[Any], params: Mapping[str, Any]) -> dict[str, Any]:
        if len(args) > len(self.params):
            raise TypeError(f"topic {self.pattern!r} takes {len(self.params)} parameters, got {len(args)}.")
        values = dict(zip(self.params, args, strict=False))
        for key, value in params.items():
            if key not in self.param_types:
                raise TypeError(f"topic {self.pattern!r} has no parameter {key!r} (it has {list(self.params)}).")
            if key in values:
                raise TypeError(f"topic {self.pattern!r}: parameter {key!r} given twice.")
            values[key] = value
        missing = [p for p in self.params if p not in values]
        if missing:
            raise TypeError(f"topic {self.pattern!r}: missing parameter {missing[0]!r}.")
        return values

    def _format(self, values: Mapping[str, Any]) -> str:
        from django.urls.converters import get_converters

        text = self.route
        for key, value in values.items():
            for conv_name, converter in get_converters().items():
                token = f"<{conv_name}:{key}>"
                if token in text:
                    text = text.replace(token, str(converter.to_url(value)))
        if self.match(text) is None:
            raise ValueError(f"topic {self.pattern!r}: {values!r} does not make a valid topic name ({text!r}).")
        return text

    def _split(self, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[str, str, Any]:
        """``(topic name, event, payload)`` from ``(*params, event, payload)`` (or ``event=``, ``payload=``)."""
        if "event" in kwargs:
            event, payload = kwargs.pop("event"), kwargs.pop("payload", None)
        elif len(args) >= 2:
            event, payload, args = args[-2], args[-1], args[:-2]
        else:
            event = None
        if not isinstance(event, str):
            example = ", ".join([*self.params, "'message'", "{...}"])
            raise TypeError(f"topic {self.pattern!r}: call it with (*params, event, payload), e.g. ({example}).")
        return self.name(*args, **kwargs), event, payload

    # -- pushing ----------------------------------------------------------------------------

    async def broadcast(
        self,
        *args: Any,
        exclude: WebSocket | Iterable[WebSocket] | None = None,
        history: bool = True,
        **kwargs: Any,
    ) -> None:
        """Send ``event`` with ``payload`` to every member of the topic, on every process.

        ``await room.broadcast(42, "message", {"text": "hi"}, exclude=websocket)``;
        parameters may be given by name too (``room_id=42``). On a topic with
        history the push is kept and carries its position; ``history=False``
        sends it as a passing signal (not kept, no position, never replayed).
        """
        name, event, payload = self._split(args, dict(kwargs))
        await self.manager.broadcast(_text(name, event, payload), group=name, exclude=exclude, history=history)

    def broadcast_sync(self, *args: Any, **kwargs: Any) -> None:
        """``broadcast`` for sync code (views, signals, commands, workers), through the channel layer."""
        name, event, payload = self._split(args, dict(kwargs))
        self.manager.broadcast_sync(_text(name, event, payload), group=name)

    async def push(self, connection: WebSocket | str, *args: Any, **kwargs: Any) -> None:
        """Send ``event`` to one connection (a ``WebSocket`` or its ``connection_id``, on any process)."""
        name, event, payload = self._split(args, dict(kwargs))
        await self.manager.send_personal_message(_text(name, event, payload), connection)

    def push_sync(self, connection_id: str, *args: Any, **kwargs: Any) -> None:
        """``push`` for sync code, by ``connection_id``."""
        name, event, payload = self._split(args, dict(kwargs))
        self.manager.send_personal_message_sync(_text(name, event, payload), connection_id)

    async def push_to_user(self, user: Any, *args: Any, **kwargs: Any) -> None:
        """Send ``event`` to every socket of ``user`` (a user or a pk) on this ``TopicSocket``, on every process."""
        name, event, payload = self._split(args, dict(kwargs))
        await self.socket.manager.send_to_user(user, _text(name, event, payload))

    def push_to_user_sync(self, user: Any, *args: Any, **kwargs: Any) -> None:
        """``push_to_user`` for sync code."""
        name, event, payload = self._split(args, dict(kwargs))
        self.socket.manager.send_to_user_sync(user, _text(name, event, payload))

    def __repr__(self) -> str:
        return f"<Topic {self.pattern!r} on {self.socket.path!r}>"


def _text(topic: str, event: str, payload: Any) -> str:
    return protocol.message_text(topic, event, payload)


class TopicSocket:
    """One websocket path serving topics: ``live = TopicSocket("/live")``.

    It registers a route at ``path`` (served by ``get_asgi_application()``, or
    ``Ravyn(routes=[live.route])``) that speaks ``ravyn.topics.v1``. ``permissions``
    and ``origins`` apply to the socket itself, as for a ``@websocket`` route;
    ``authenticate`` is a dependency run before accept that may set the user
    (``ravyn_channels.auth.token_user``: the ``["bearer", token]`` subprotocol).
    """

    def __init__(
        self,
        path: str,
        *,
        name: str | None = None,
        permissions: Sequence[Any] | None = None,
        origins: Sequence[str] | None = None,
        max_message_size: int | None = None,
        authenticate: Callable[..., Any] | None = None,
    ):
        if "{" in path or "}" in path:
            # Topics belong to the socket, not to a path value: "/org/{org}/live" would let every
            # org's clients share "room:1". Put the parameter in the topic names instead.
            raise ValueError(
                f"TopicSocket({path!r}): a topic socket's path takes no parameters (its topics are shared by "
                "every path). Put them in the topic names (live.topic('org:{org}:room:{id}')) and authorize "
                "joins with the topic's permissions or join handler."
            )
        self.path = path
        self.topics: list[Topic] = []
        self.manager = ConnectionManager(f"ravyn.topics:{path}")
        from .session import serve

        async def plain(websocket: WebSocket) -> None:
            await serve(self, websocket)

        topic_socket: Callable[..., Awaitable[None]] = plain
        if authenticate is not None:

            async def authenticated(websocket: WebSocket, _user: Any = Inject(authenticate)) -> None:
                await serve(self, websocket)

            topic_socket = authenticated
        topic_socket.__qualname__ = topic_socket.__name__ = f"topic_socket{path.replace('/', '_')}"
        topic_socket.__doc__ = f"Topic socket at {path} (ravyn.topics.v1)."
        topic_socket.__module__ = sys._getframe(1).f_globals.get("__name__", __name__)
        self.route: WebSocketRoute[Any] = websocket(
            path,
            name=name,
            permissions=permissions,
            origins=origins,
            max_message_size=max_message_size,
        )(topic_socket)
        self.route.topic_socket = self  # type: ignore[attr-defined]
        _registry.append(self)

    def topic(
        self,
        pattern: str,
        *,
        presence: bool = False,
        permissions: Sequence[Any] | None = None,
        history: HistoryConfig | None = None,
    ) -> Topic:
        """Declare a topic pattern; ``permissions`` must allow each join, ``presence`` tracks its members.

        ``history=HistoryConfig(...)`` keeps each topic's last pushes: every push
        carries its ``position``, and a client rejoining with its last one gets
        what it missed, in order, once (or a ``resync``); see the topics guide.
        """
        topic = Topic(self, pattern, presence=presence, permissions=permissions, history=history)
        self.topics.append(topic)
        return topic

    def find(self, name: str) -> tuple[Topic, dict[str, Any]] | None:
        """The first topic whose pattern matches ``name``, with its parameters."""
        for topic in self.topics:
            params = topic.match(name)
            if params is not None:
                return topic, params
        return None

    def __repr__(self) -> str:
        return f"<TopicSocket {self.path!r} topics={[t.pattern for t in self.topics]!r}>"


_registry: list[TopicSocket] = []


def registered_sockets() -> list[TopicSocket]:
    """Every ``TopicSocket`` declared so far."""
    return list(_registry)
