"""What a handler's signature may declare: ``Query()``, ``Header()``, ``Cookie()``, ``Inject()``.

    @websocket("/feed/{room}")
    async def feed(
        websocket: WebSocket,
        room: str,                              # path parameter
        token: str = Query(),                   # ?token=... (required)
        page: int = Query(1),                   # ?page=2 (optional, converted)
        tags: list[str] = Query([]),            # ?tags=a&tags=b
        agent: str = Header("", alias="user-agent"),
        session: str | None = Cookie(None, alias="sessionid"),
        db = Inject(get_db),                    # a dependency, once per connection
        user: User = ...,                       # the logged-in Django user
    ) -> None: ...

The markers work as defaults (above) or in ``Annotated[str, Query()]``. How a
signature becomes values is in ``signatures.py`` (read at decoration time) and
``resolver.py`` (run before ``accept``). A missing or invalid value raises
``ParameterError``, which refuses the handshake (HTTP 403, one INFO line).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

from .websocket import WebSocketException

__all__ = [
    "REQUIRED",
    "Cookie",
    "CookieParam",
    "Dependency",
    "Header",
    "HeaderParam",
    "Inject",
    "Param",
    "ParameterError",
    "Query",
    "QueryParam",
]

class _Required:
    def __repr__(self) -> str:
        return "<required>"


#: The default of a marker that has none: the value must be sent.
REQUIRED: Any = _Required()


class ParameterError(WebSocketException):
    """A value for a handler parameter is missing or invalid; the handshake is refused."""

    def __init__(self, name: str, why: str, *, via: str | None = None):
        self.name = name
        self.why = why
        self.via = via
        owner = f" of dependency {via}" if via else ""
        super().__init__(reason=f"parameter {name!r}{owner}: {why}")

    def __str__(self) -> str:
        return self.reason


# -- markers -------------------------------------------------------------------------------


class Param:
    """Where a parameter's value comes from in the handshake (base of ``QueryParam``...)."""

    source: ClassVar[str] = ""
    words: ClassVar[str] = ""

    def __init__(self, default: Any = REQUIRED, *, alias: str | None = None, description: str | None = None):
        self.default = REQUIRED if default is ... else default
        self.alias = alias
        self.description = description

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def key(self, name: str) -> str:
        """The name the value is sent under."""
        return self.alias or name

    def __repr__(self) -> str:
        parts = [] if self.required else [repr(self.default)]
        if self.alias:
            parts.append(f"alias={self.alias!r}")
        return f"{type(self).__name__.removesuffix('Param')}({', '.join(parts)})"


class QueryParam(Param):
    """A query-string parameter (``Query()``)."""

    source = "query"
    words = "query parameter"


class HeaderParam(Param):
    """A request header of the handshake (``Header()``); ``x_token`` reads ``x-token``."""

    source = "header"
    words = "header"

    def __init__(
        self,
        default: Any = REQUIRED,
        *,
        alias: str | None = None,
        convert_underscores: bool = True,
        description: str | None = None,
    ):
        super().__init__(default, alias=alias, description=description)
        self.convert_underscores = convert_underscores

    def key(self, name: str) -> str:
        if self.alias:
            return self.alias.lower()
        return (name.replace("_", "-") if self.convert_underscores else name).lower()


class CookieParam(Param):
    """A cookie sent with the handshake (``Cookie()``)."""

    source = "cookie"
    words = "cookie"


class Dependency:
    """A value computed by a callable for each connection (``Inject(get_db)``)."""

    def __init__(self, dependency: Callable[..., Any], *, use_cache: bool = True):
        if not callable(dependency):
            raise TypeError(f"Inject() takes a function or class to call, got {dependency!r}.")
        self.dependency = dependency
        self.use_cache = use_cache

    def __repr__(self) -> str:
        return f"Inject({qualname(self.dependency)})"


def Query(default: Any = REQUIRED, *, alias: str | None = None, description: str | None = None) -> Any:
    """A query-string parameter: ``token: str = Query()`` (required), ``page: int = Query(1)``,
    ``tags: list[str] = Query([])`` (every ``?tags=`` value), ``q: str | None = Query(None)``."""
    return QueryParam(default, alias=alias, description=description)


def Header(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    convert_underscores: bool = True,
    description: str | None = None,
) -> Any:
    """A handshake header: ``user_agent: str = Header()`` reads ``User-Agent``."""
    return HeaderParam(default, alias=alias, convert_underscores=convert_underscores, description=description)


def Cookie(default: Any = REQUIRED, *, alias: str | None = None, description: str | None = None) -> Any:
    """A cookie of the handshake: ``session: str | None = Cookie(None)``."""
    return CookieParam(default, alias=alias, description=description)


def Inject(dependency: Callable[..., Any], *, use_cache: bool = True) -> Any:
    """The result of ``dependency``, called once per connection before the handler runs.

    ``dependency`` may be ``async def`` or plain (run in a thread, with
    Django's database connection hygiene), or a generator (sync or async)
    whose code after ``yield`` runs when the connection closes. Its own
    parameters are filled like the handler's. With ``use_cache`` (default) a
    dependency used several times in one connection is called once.
    """
    return Dependency(dependency, use_cache=use_cache)


def qualname(func: Any) -> str:
    target = func
    while isinstance(target, functools.partial):
        target = target.func
    module = getattr(target, "__module__", None) or type(target).__module__
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{name}"
