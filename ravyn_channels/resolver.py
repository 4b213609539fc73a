"""Running a ``Plan`` before ``accept``: the handler's keyword arguments for one connection.

A ``Plan`` (built by ``signatures.plan_for`` at decoration time) lists where
each parameter's value comes from. ``await plan.resolve(websocket, path_values)``
reads the handshake (query, headers, cookies, user), converts values, and
calls dependencies: ``async def`` ones on the loop, plain ones in a thread
(``channels.db.database_sync_to_async``), generators entered now and exited
when the connection closes. Each dependency runs once per connection unless
``Inject(..., use_cache=False)``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .coerce import Spec
from .params import REQUIRED, Param, ParameterError
from .websocket import WebSocket, WebSocketException, describe_refusal

__all__ = ["Cleanup", "Plan", "run_cleanups"]

Cleanup = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Slot:
    """One parameter: where its value comes from."""

    name: str
    kind: str  # websocket | path | query | header | cookie | user | inject | reserved | keep
    key: str = ""
    spec: Spec | None = None
    default: Any = REQUIRED
    dependency: Call | None = None
    marker: Param | None = None
    user_required: bool = False
    #: For a pydantic model filled from its source: (field key, key in the source, takes a list).
    fields: tuple[tuple[str, str, bool], ...] = ()


@dataclass(frozen=True)
class Call:
    """A dependency to call, with the plan for its own parameters."""

    func: Callable[..., Any]
    plan: Plan
    call: str  # async | sync | asyncgen | gen
    use_cache: bool
    qualname: str


@dataclass(frozen=True)
class Plan:
    """How to call one handler (or dependency): which parameter gets what."""

    params: tuple[Slot, ...]
    where: str = ""

    def walk(self) -> Iterator[tuple[str, Slot]]:
        """Every parameter, including those of dependencies: ``(owner, param)``."""
        for param in self.params:
            yield self.where, param
            if param.dependency is not None:
                yield from param.dependency.plan.walk()

    def describe(self) -> dict[str, str]:
        """``{parameter: where its value comes from}`` for tools (``manage.py ws_routes``)."""
        out: dict[str, str] = {}
        for p in self.params:
            if p.kind in ("query", "header", "cookie"):
                out[p.name] = f"{p.kind}:{p.key}"
            elif p.kind == "inject" and p.dependency is not None:
                out[p.name] = f"inject:{p.dependency.qualname}"
            elif p.kind == "reserved":
                out[p.name] = f"all {p.key}"
            else:
                out[p.name] = p.kind
        return out

    async def resolve(
        self,
        websocket: WebSocket,
        path_values: Mapping[str, Any],
        cleanups: list[Cleanup] | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments for the handler, or ``ParameterError``.

        The exit code of generator dependencies is appended to ``cleanups``
        (by default registered with the connection's consumer, which runs it
        when the connection closes). If resolution fails, what was already
        entered is exited before the error propagates.
        """
        register = cleanups is None
        context = _Context(websocket, path_values, [] if cleanups is None else cleanups)
        mark = len(context.cleanups)
        try:
            kwargs = await self._fill(context)
        except BaseException:
            await run_cleanups(context.cleanups[mark:])
            del context.cleanups[mark:]
            raise
        if register and context.cleanups:
            consumer = getattr(websocket, "consumer", None)
            for cleanup in context.cleanups:
                if consumer is not None:
                    consumer.on_close(cleanup)
        return kwargs

    async def _fill(self, context: _Context) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for p in self.params:
            kind = p.kind
            if kind == "websocket":
                kwargs[p.name] = context.websocket
            elif kind == "path":
                kwargs[p.name] = _convert_path(p, context.path_values[p.name])
            elif kind == "inject":
                kwargs[p.name] = await context.call(p)
            elif kind == "user":
                kwargs[p.name] = _user(p, context.websocket)
            elif kind == "reserved":
                kwargs[p.name] = _reserved(p.key, context.websocket)
            elif kind == "keep":
                continue
            else:
                kwargs[p.name] = context.value(p)
        return kwargs


async def run_cleanups(cleanups: list[Cleanup]) -> None:
    """Run ``cleanups`` last-in first-out; every one runs even if one fails (the first error is raised)."""
    error: BaseException | None = None
    for cleanup in reversed(cleanups):
        try:
            await cleanup()
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error


class _Context:
    """One resolution: the connection, its cached sources and dependency results."""

    __slots__ = ("_query", "cache", "cleanups", "path_values", "websocket")

    def __init__(self, websocket: WebSocket, path_values: Mapping[str, Any], cleanups: list[Cleanup]):
        self.websocket = websocket
        self.path_values = path_values
        self.cleanups = cleanups
        self.cache: dict[Any, Any] = {}
        self._query: Any = None

    def values(self, kind: str, key: str) -> list[str]:
        ws = self.websocket
        if kind == "query":
            if self._query is None:
                self._query = ws.query_params
            return list(self._query.getlist(key))
        if kind == "header":
            return ws.headers.getlist(key)
        cookie = ws.cookies.get(key)
        return [] if cookie is None else [cookie]

    def value(self, p: Slot) -> Any:
        spec = p.spec
        assert spec is not None and p.marker is not None
        words = p.marker.words
        if spec.model is not None:
            data = self._model_input(p)
            try:
                return spec.convert(data)
            except ValueError as exc:
                raise ParameterError(p.name, f"{words}s do not fit {spec.model.__name__} ({exc})") from None
        values = self.values(p.kind, p.key)
        if not values:
            if p.default is REQUIRED:
                raise ParameterError(p.name, f"missing {words} {p.key!r}")
            return copy.copy(p.default)
        try:
            if spec.many:
                return spec.convert(values)
            return spec.convert(values[-1] if p.kind == "query" else values[0])
        except ValueError as exc:
            raise ParameterError(p.name, f"{words} {p.key!r}: {exc}") from None

    def _model_input(self, p: Slot) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, source_key, many in p.fields:
            values = self.values(p.kind, source_key)
            if values:
                data[key] = values if many else values[-1]
        return data

    async def call(self, p: Slot) -> Any:
        dep = p.dependency
        assert dep is not None
        if dep.use_cache and dep.func in self.cache:
            return self.cache[dep.func]
        try:
            kwargs = await dep.plan._fill(self)
        except ParameterError as exc:
            if exc.via is None:
                raise ParameterError(exc.name, exc.why, via=dep.qualname) from None
            raise
        try:
            value = await _invoke(dep, kwargs, self.cleanups)
        except ParameterError:
            raise
        except WebSocketException as exc:
            raise ParameterError(p.name, f"{dep.qualname} refused ({describe_refusal(exc)})") from exc
        except Exception as exc:
            if _is_permission_denied(exc):
                raise ParameterError(p.name, f"{dep.qualname} refused (PermissionDenied: {exc})") from exc
            raise
        if dep.use_cache:
            self.cache[dep.func] = value
        return value


def _is_permission_denied(exc: BaseException) -> bool:
    from django.core.exceptions import PermissionDenied

    return isinstance(exc, PermissionDenied)


def _sync(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    from channels.db import database_sync_to_async

    return database_sync_to_async(func)  # type: ignore[no-any-return]


async def _invoke(dep: Call, kwargs: dict[str, Any], cleanups: list[Cleanup]) -> Any:
    call = dep.call
    if call == "async":
        return await dep.func(**kwargs)
    if call == "sync":
        return await _sync(dep.func)(**kwargs)
    if call == "asyncgen":
        acm = contextlib.asynccontextmanager(dep.func)(**kwargs)
        value = await acm.__aenter__()

        async def aexit() -> None:
            await acm.__aexit__(None, None, None)

        cleanups.append(aexit)
        return value
    cm = contextlib.contextmanager(dep.func)(**kwargs)
    value = await _sync(cm.__enter__)()

    async def exit_() -> None:
        await _sync(cm.__exit__)(None, None, None)

    cleanups.append(exit_)
    return value


def _convert_path(p: Slot, value: Any) -> Any:
    if p.spec is None:
        return value
    try:
        return p.spec.convert(value)
    except ValueError as exc:
        raise ParameterError(p.name, str(exc)) from None


def _reserved(name: str, websocket: WebSocket) -> Any:
    """Ravyn's reserved parameters: ``headers`` (case-insensitive), ``query`` and ``cookies`` (dicts)."""
    if name == "headers":
        return websocket.headers
    if name == "query":
        return dict(websocket.query_params)
    return websocket.cookies


def _user(p: Slot, websocket: WebSocket) -> Any:
    user = websocket.user
    if p.user_required and not getattr(user, "is_authenticated", False):
        if p.default is not REQUIRED:
            return p.default
        raise ParameterError(p.name, "needs a logged-in user; this connection is anonymous")
    return user
