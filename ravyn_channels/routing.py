"""The ``@websocket`` decorator, Ravyn's path syntax, and the route registry.

``@websocket("/ws/{client_id:int}")`` turns an ``async def`` into a
``WebSocketRoute``: still callable as the function, and carrying a Django URL
pattern and a generated Channels consumer. Routing itself is Channels'
``URLRouter`` over Django's path converters.
"""

from __future__ import annotations

import functools
import inspect
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, overload

from django.urls import URLPattern, re_path, register_converter
from django.urls import path as django_path
from django.urls.converters import get_converters

from .conf import OverflowPolicy
from .limits import RateLimit
from .origins import parse_pattern
from .params import qualname
from .permissions import Permission, check_permissions, permission_list
from .resolver import Cleanup, Plan, run_cleanups
from .signatures import plan_for

if TYPE_CHECKING:
    from channels.generic.websocket import AsyncWebsocketConsumer

    from .websocket import WebSocket

__all__ = [
    "WebSocketRoute",
    "registered_routes",
    "websocket",
    "websocket_urlpatterns",
]

P = ParamSpec("P")


class _FloatConverter:
    regex = r"-?[0-9]+(?:\.[0-9]+)?"

    def to_python(self, value: str) -> float:
        return float(value)

    def to_url(self, value: float) -> str:
        return repr(float(value))


class _SignedIntConverter:
    regex = r"-?[0-9]+"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(int(value))


# Ravyn's converter names -> (Django converter name, Python type).
_CONVERTERS: dict[str, tuple[str, type]] = {
    "str": ("str", str),
    "int": ("ravyn_int", int),
    "float": ("ravyn_float", float),
    "uuid": ("uuid", uuid.UUID),
    "path": ("path", str),
}
for _name, _converter in (("ravyn_int", _SignedIntConverter), ("ravyn_float", _FloatConverter)):
    if _name not in get_converters():
        register_converter(_converter, _name)

_PARAM = re.compile(r"{([^{}]*)}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def compile_path(path: str, where: str = "route") -> tuple[str, dict[str, type]]:
    """Ravyn path -> (Django route string, ``{name: python type}``)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"{where}: websocket path {path!r} must be a string starting with '/'.")
    if "<" in path or ">" in path:
        raise ValueError(
            f"{where}: websocket path {path!r} uses Django's <type:name> syntax; "
            "write {name} or {name:type} as in Ravyn."
        )
    params: dict[str, type] = {}
    pieces: list[str] = []
    last = 0
    for match in _PARAM.finditer(path):
        pieces.append(path[last : match.start()])
        name, _, conv = match.group(1).partition(":")
        name, conv = name.strip(), (conv.strip() or "str")
        if not _IDENTIFIER.match(name):
            raise ValueError(f"{where}: {{{match.group(1)}}} in {path!r} is not a valid parameter name.")
        if conv not in _CONVERTERS:
            raise ValueError(
                f"{where}: unknown converter {conv!r} in {path!r}; "
                f"use one of {', '.join(_CONVERTERS)}."
            )
        if name in params:
            raise ValueError(f"{where}: duplicated param name {name!r} in path {path!r}.")
        django_name, python_type = _CONVERTERS[conv]
        params[name] = python_type
        pieces.append(f"<{django_name}:{name}>")
        last = match.end()
    pieces.append(path[last:])
    route = "".join(pieces)
    if "{" in route or "}" in route:
        raise ValueError(f"{where}: unbalanced braces in websocket path {path!r}.")
    return route.lstrip("/"), params


def _unwrap_partial(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    while isinstance(endpoint, functools.partial):
        endpoint = endpoint.func
    return endpoint


class WebSocketRoute(Generic[P]):
    """A decorated handler: call it like the function; serve it through ``consumer``."""

    def __init__(
        self,
        endpoint: Callable[P, Awaitable[None]],
        path: str,
        *,
        name: str | None = None,
        inbox_size: int | None = None,
        inbox_overflow: OverflowPolicy | None = None,
        max_message_size: int | None = None,
        origins: Sequence[str] | None = None,
        permissions: Sequence[Any] | None = None,
        rate_limit: RateLimit | str | None = None,
    ):
        function = _unwrap_partial(endpoint)
        where = qualname(endpoint)
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(
                f"{where}: @websocket handlers must be 'async def' functions; "
                "for sync work inside, use asgiref's sync_to_async or channels.db.database_sync_to_async."
            )
        self.endpoint = endpoint
        self.path = path
        self.route, self.param_types = compile_path(path, where)
        #: The function behind the endpoint (the endpoint itself unless it is a ``functools.partial``).
        self.function: Callable[..., Awaitable[None]] = function
        self.name = name or getattr(function, "__name__", type(function).__name__)
        self.inbox_size = inbox_size
        self.inbox_overflow = inbox_overflow
        self.max_message_size = max_message_size
        if isinstance(origins, str):
            raise TypeError(f"{where}: origins= takes a list of patterns, e.g. origins=[{origins!r}].")
        for pattern in origins or ():
            if not isinstance(pattern, str):
                raise TypeError(f"{where}: origins= takes strings, got {pattern!r}.")
            try:
                parse_pattern(pattern)
            except ValueError as exc:
                raise ValueError(f"{where}: origins=: {exc}.") from None
        self.origins = tuple(origins) if origins is not None else None
        self.permissions: tuple[Permission, ...] = permission_list(permissions, where)
        self.rate_limit = _rate_limit(rate_limit, where)
        self.plan: Plan = plan_for(endpoint, self.param_types)
        self.qualname = where
        functools.update_wrapper(self, function)
        self.__wrapped__ = endpoint  # inspect.signature(route) is the endpoint's (a partial's, without bound args)
        from .consumer import build_consumer

        self.consumer: type[AsyncWebsocketConsumer] = build_consumer(self)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[None]:
        return self.endpoint(*args, **kwargs)

    async def admit(self, websocket: WebSocket, path_values: Mapping[str, Any]) -> dict[str, Any]:
        """Before ``accept``: the handler's keyword arguments, once its permissions allow the connection.

        Parameters and dependencies are resolved first (a dependency may
        authenticate), then the permissions are checked. Raises
        ``WebSocketException`` (``ParameterError``, ``PermissionRefused``) to
        refuse; the exit code of generator dependencies then runs at once,
        otherwise when the connection closes.
        """
        cleanups: list[Cleanup] = []
        try:
            kwargs = await self.plan.resolve(websocket, path_values, cleanups)
            if self.permissions:
                await check_permissions(websocket, self.permissions)
        except BaseException:
            await run_cleanups(cleanups)
            raise
        consumer = websocket.consumer
        if consumer is not None:
            for cleanup in cleanups:
                consumer.on_close(cleanup)
        return kwargs

    @functools.cached_property
    def pattern(self) -> URLPattern:
        """The Django URL pattern serving this route, for a ``URLRouter``."""
        pattern: URLPattern = django_path(self.route, self.consumer.as_asgi(), name=self.name)
        return pattern

    def __repr__(self) -> str:
        return f"<WebSocketRoute {self.path!r} -> {self.qualname}>"


def _rate_limit(value: RateLimit | str | None, where: str) -> RateLimit | None:
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, str):
        try:
            return RateLimit(messages=value)
        except ValueError as exc:
            raise ValueError(f"{where}: rate_limit=: {exc}") from None
    raise TypeError(f"{where}: rate_limit= takes a RateLimit(...) or a message rate such as '20/s', got {value!r}.")


_registry: list[WebSocketRoute[Any]] = []


@overload
def websocket(path: str) -> Callable[[Callable[P, Awaitable[None]]], WebSocketRoute[P]]: ...
@overload
def websocket(
    path: str,
    *,
    name: str | None = ...,
    inbox_size: int | None = ...,
    inbox_overflow: OverflowPolicy | None = ...,
    max_message_size: int | None = ...,
    origins: Sequence[str] | None = ...,
    permissions: Sequence[Any] | None = ...,
    rate_limit: RateLimit | str | None = ...,
) -> Callable[[Callable[P, Awaitable[None]]], WebSocketRoute[P]]: ...


def websocket(
    path: str,
    *,
    name: str | None = None,
    inbox_size: int | None = None,
    inbox_overflow: OverflowPolicy | None = None,
    max_message_size: int | None = None,
    origins: Sequence[str] | None = None,
    permissions: Sequence[Any] | None = None,
    rate_limit: RateLimit | str | None = None,
) -> Callable[[Callable[P, Awaitable[None]]], WebSocketRoute[P]]:
    """Declare an ``async def`` as the handler of the websocket endpoint at ``path``.

    ``path`` uses Ravyn's syntax: ``/ws/{client_id}``, ``/rooms/{room_id:int}``
    (converters ``str``, ``int``, ``float``, ``uuid``, ``path``).
    ``permissions`` (classes or instances, see ``ravyn_channels.permissions``)
    must all allow a connection before the handler runs. ``rate_limit`` is a
    ``ravyn_channels.limits.RateLimit`` (or a rate such as ``"20/s"`` for the
    messages of each connection). The other arguments
    override ``RAVYN_CHANNELS`` for this route (``origins`` replaces the
    allowed origins).
    """
    if callable(path):
        raise TypeError("Use @websocket('/path'), not bare @websocket: the path is required.")

    def decorate(endpoint: Callable[P, Awaitable[None]]) -> WebSocketRoute[P]:
        route = WebSocketRoute(
            endpoint,
            path,
            name=name,
            inbox_size=inbox_size,
            inbox_overflow=inbox_overflow,
            max_message_size=max_message_size,
            origins=origins,
            permissions=permissions,
            rate_limit=rate_limit,
        )
        _registry.append(route)
        return route

    return decorate


def registered_routes() -> list[WebSocketRoute[Any]]:
    """Every route declared so far with ``@websocket``, in declaration order."""
    return list(_registry)


def websocket_urlpatterns(
    routes: Iterable[WebSocketRoute[Any]] | None = None, *, fallback: bool = False
) -> list[URLPattern]:
    """URL patterns for a Channels ``URLRouter``: the given routes, or every registered one.

    With ``fallback=True`` a last pattern refuses unknown paths (HTTP 403, one
    INFO line) instead of letting ``URLRouter`` raise (which daphne answers with 500).
    """
    chosen = registered_routes() if routes is None else list(routes)
    patterns = [route.pattern for route in chosen]
    if fallback:
        from .consumer import NotFoundConsumer

        patterns.append(re_path(r"", NotFoundConsumer.as_asgi(), name="ravyn_channels_not_found"))
    return patterns
