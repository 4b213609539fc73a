"""From a handler's signature to the values it is called with.

The signature is read once, at decoration time: every parameter must be
fillable (the ``WebSocket``, or a path parameter), or decoration fails with a
message naming the handler, the parameter and the fix. At connection time
``resolve`` converts the values before the handler runs; a value that does not
convert raises ``ParameterError``, which refuses the handshake.
"""

from __future__ import annotations

import inspect
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .websocket import WebSocket

__all__ = ["ParameterError", "Plan", "plan_for"]

#: Parameter names that receive the ``WebSocket`` when not annotated otherwise.
WEBSOCKET_NAMES = frozenset({"websocket", "socket", "ws"})

#: Annotations a path parameter may carry, and how a path value becomes one.
_COERCE: dict[Any, Callable[[Any], Any]] = {
    str: str,
    int: int,
    float: float,
    uuid.UUID: lambda v: v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)),
}


class ParameterError(Exception):
    """A value for a handler parameter is missing or invalid; the handshake is refused."""

    def __init__(self, name: str, why: str):
        self.name = name
        self.why = why
        super().__init__(f"parameter {name!r}: {why}")


@dataclass(frozen=True)
class _Param:
    name: str
    kind: str  # "websocket" | "path"
    coerce: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Plan:
    """How to call one handler: which parameter gets what."""

    params: tuple[_Param, ...]

    def resolve(self, websocket: WebSocket, path_values: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments for the handler, or ``ParameterError``."""
        kwargs: dict[str, Any] = {}
        for p in self.params:
            if p.kind == "websocket":
                kwargs[p.name] = websocket
                continue
            value = path_values[p.name]
            if p.coerce is not None:
                try:
                    value = p.coerce(value)
                except (TypeError, ValueError) as exc:
                    raise ParameterError(p.name, f"{value!r} does not convert ({exc})") from None
            kwargs[p.name] = value
        return kwargs


def _qualname(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{getattr(func, '__qualname__', func.__name__)}"


def _is_websocket_annotation(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, WebSocket)


def plan_for(func: Callable[..., Any], path_params: Mapping[str, type]) -> Plan:
    """Read ``func``'s signature against the route's ``{name: type}`` path parameters."""
    where = _qualname(func)
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        hints = {}
    signature = inspect.signature(func)
    params: list[_Param] = []
    websocket_param: str | None = None
    for name, parameter in signature.parameters.items():
        annotation = hints.get(name, parameter.annotation)
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise TypeError(
                f"{where}: parameter {name!r} is positional-only; handlers are called with "
                "keyword arguments. Remove the '/' from the signature."
            )
        is_ws = _is_websocket_annotation(annotation) or (
            name in WEBSOCKET_NAMES and name not in path_params and annotation is inspect.Parameter.empty
        )
        if is_ws:
            if websocket_param is not None:
                raise TypeError(
                    f"{where}: both {websocket_param!r} and {name!r} would receive the WebSocket; "
                    "keep one."
                )
            websocket_param = name
            params.append(_Param(name, "websocket"))
        elif name in path_params:
            coerce = None
            if annotation not in (inspect.Parameter.empty, Any, path_params[name]):
                coerce = _COERCE.get(annotation)
                if coerce is None:
                    raise TypeError(
                        f"{where}: path parameter {name!r} is annotated {annotation!r}; "
                        "annotate it str, int, float or uuid.UUID, or leave it unannotated."
                    )
            params.append(_Param(name, "path", coerce))
        elif parameter.default is not inspect.Parameter.empty:
            continue  # keeps its default
        else:
            raise TypeError(
                f"{where}: parameter {name!r} cannot be filled. A handler takes the WebSocket "
                "(annotate it 'WebSocket' or name it websocket, socket or ws) and the path "
                f"parameters of its route ({', '.join(sorted(path_params)) or 'none'}). "
                f"Add '{{{name}}}' to the path or give {name!r} a default."
            )
    if websocket_param is None:
        raise TypeError(
            f"{where}: no parameter receives the WebSocket. Add 'websocket: WebSocket' "
            "to the signature (the names socket and ws work too)."
        )
    return Plan(tuple(params))
