"""Reading a handler's signature, once, at decoration time: ``plan_for`` -> ``Plan``.

Each parameter is filled by the first rule that applies:

1. ``Inject(dependency)`` (as the default or in ``Annotated``): the dependency's result;
2. ``Query()``, ``Header()``, ``Cookie()``: a value from the handshake, converted to the annotation;
3. the ``WebSocket`` (annotated ``WebSocket``, or named ``websocket``, ``socket`` or ``ws``);
4. a path parameter of the route, by name (converted to the annotation);
5. the Django user (annotated with a user class, or named ``user``);
6. Ravyn's reserved names ``headers``, ``query`` and ``cookies`` (unannotated or annotated
   ``dict``/``Mapping``): every header, query parameter or cookie of the handshake;
7. a parameter with a simple annotation (``q: str``, ``page: int = 1``, ``q: int | None = None``)
   or none: a query parameter, as in FastAPI and Ravyn, required when it has no default;
8. any other parameter with a default keeps it.

Anything else fails decoration with a message naming the handler, the
parameter and the fix. Dependencies are read the same way (they may take the
WebSocket, path, query, header and cookie values, the user and other
dependencies); a dependency cycle fails too.
"""

from __future__ import annotations

import copy
import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Union

from .coerce import Spec, is_simple, spec_for
from .params import (
    REQUIRED,
    CookieParam,
    Dependency,
    HeaderParam,
    Param,
    QueryParam,
    qualname,
)
from .resolver import Call, Plan, Slot
from .websocket import WebSocket

__all__ = ["RESERVED_NAMES", "WEBSOCKET_NAMES", "plan_for"]

#: Parameter names that receive the ``WebSocket`` when not annotated otherwise.
WEBSOCKET_NAMES = frozenset({"websocket", "socket", "ws"})
#: Ravyn's reserved parameter names: every header, query parameter or cookie of the handshake.
RESERVED_NAMES = frozenset({"headers", "query", "cookies"})


class _Unresolved:
    """An annotation that could not be evaluated at decoration time."""

    def __init__(self, text: str, error: Exception):
        self.text = text
        self.error = error

    def __repr__(self) -> str:
        return repr(self.text)


_EMPTY = inspect.Parameter.empty
_NONE = type(None)
_USER = ("django.contrib.auth.base_user", "AbstractBaseUser")
_ANONYMOUS = ("django.contrib.auth.models", "AnonymousUser")


def _call_target(func: Any) -> Any:
    if inspect.isclass(func):
        return func.__init__
    if inspect.isfunction(func) or inspect.ismethod(func) or isinstance(func, functools.partial):
        return func
    return func.__call__  # a callable instance: its bound __call__


def _call_kind(func: Any) -> str:
    if inspect.isclass(func):
        return "sync"
    target = _call_target(func)
    if inspect.isasyncgenfunction(target):
        return "asyncgen"
    if inspect.isgeneratorfunction(target):
        return "gen"
    if inspect.iscoroutinefunction(target):
        return "async"
    return "sync"


def _annotations(func: Any, signature: inspect.Signature) -> dict[str, Any]:
    target = _call_target(func)
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # a name that is not defined yet: resolve what can be, one by one
        pass
    inner = getattr(target, "func", target)
    namespace = dict(getattr(inspect.unwrap(inner), "__globals__", {}))
    namespace.setdefault("Annotated", Annotated)
    hints: dict[str, Any] = {}
    for name, parameter in signature.parameters.items():
        annotation = parameter.annotation
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)
            except Exception as exc:
                annotation = _Unresolved(annotation, exc)
        hints[name] = annotation
    return hints


def _marker_of(annotation: Any, default: Any, where: str, name: str) -> tuple[Param | Dependency | None, Any]:
    """The marker of a parameter (in its default or its ``Annotated`` metadata) and its default."""
    found: list[Any] = []
    if typing.get_origin(annotation) is Annotated:
        found = [m for m in annotation.__metadata__ if isinstance(m, (Param, Dependency))]
    if len(found) > 1:
        raise TypeError(f"{where}: parameter {name!r} has {len(found)} markers in Annotated; keep one.")
    if isinstance(default, (Param, Dependency)):
        if found:
            raise TypeError(
                f"{where}: parameter {name!r} has a marker both in Annotated and as its default; keep one."
            )
        return default, _EMPTY
    if found:
        marker = found[0]
        if isinstance(marker, Param) and default is not _EMPTY:
            if not marker.required:
                raise TypeError(
                    f"{where}: parameter {name!r} has a default both in {marker!r} and after '='; "
                    "keep the one after '='."
                )
            marker = copy.copy(marker)
            marker.default = default
        return marker, default
    return None, default


def _strip_annotated(annotation: Any) -> Any:
    return annotation.__origin__ if typing.get_origin(annotation) is Annotated else annotation


def _is_websocket_annotation(annotation: Any) -> bool:
    annotation = _strip_annotated(annotation)
    return isinstance(annotation, type) and issubclass(annotation, WebSocket)


def _user_kind(annotation: Any) -> tuple[bool, bool] | None:
    """``(a logged-in user is required, None is allowed)`` if the annotation names user classes."""
    annotation = _strip_annotated(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation) if origin is Union or origin is types.UnionType else (annotation,)
    required, optional, any_user = True, False, False
    for arg in args:
        if arg is _NONE:
            optional = True
            continue
        if not isinstance(arg, type):
            return None
        marks = {(k.__module__, k.__qualname__) for k in arg.__mro__}
        if _ANONYMOUS in marks:
            required = False
        elif _USER not in marks:
            return None
        any_user = True
    return (required, optional) if any_user else None


def _is_mapping_annotation(annotation: Any) -> bool:
    """``dict``, ``dict[str, str]``, ``Mapping[...]`` (what a reserved name may be annotated with)."""
    base = typing.get_origin(annotation) or annotation
    return isinstance(base, type) and issubclass(base, (dict, Mapping))


def _type_name(annotation: Any) -> str:
    return annotation.__qualname__ if isinstance(annotation, type) else repr(annotation)


def _partial_keywords(func: Any) -> frozenset[str]:
    """Names bound by ``functools.partial`` keywords: their values are fixed, never read from the client."""
    names: set[str] = set()
    while isinstance(func, functools.partial):
        names.update(func.keywords)
        func = func.func
    return frozenset(names)


def _default_type(default: Any) -> Any:
    if default is None or default is REQUIRED or default is _EMPTY:
        return str
    if isinstance(default, (bool, int, float, str)):
        return type(default)
    if isinstance(default, (list, tuple, set, frozenset)):
        return list[str]
    return None


def _need_type(annotation: Any, where: str, name: str) -> None:
    if isinstance(annotation, _Unresolved):
        raise TypeError(
            f"{where}: the annotation {annotation.text!r} of parameter {name!r} cannot be resolved "
            f"({type(annotation.error).__name__}: {annotation.error}). Import that name at module "
            "level (not only under TYPE_CHECKING) before the handler is decorated."
        )


def _model_fields(model: Any, marker: Param) -> tuple[tuple[str, str, bool], ...]:
    fields = []
    for field_name, field in model.model_fields.items():
        key = field.alias or field_name
        source_key = marker.key(key) if isinstance(marker, HeaderParam) else key
        try:
            many = spec_for(field.annotation, "field").many
        except TypeError:
            many = False
        fields.append((key, source_key, many))
    return tuple(fields)


def plan_for(
    func: Callable[..., Any],
    path_params: Mapping[str, type],
    *,
    needs_websocket: bool = True,
    _handler: str | None = None,
    _stack: tuple[Any, ...] = (),
) -> Plan:
    """Read ``func``'s signature against the route's ``{name: type}`` path parameters.

    ``func`` is a handler (it must take the ``WebSocket`` unless
    ``needs_websocket=False``, as topic handlers) or, internally, one of its
    dependencies.
    """
    is_handler = _handler is None
    where = qualname(func) if is_handler else f"{_handler}: dependency {qualname(func)}"
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: cannot read its signature ({exc}).") from None
    hints = _annotations(func, signature)
    params: list[Slot] = []
    websocket_param: str | None = None
    bound = _partial_keywords(func)
    for name, parameter in signature.parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name in bound:
            params.append(Slot(name, "keep"))
            continue
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise TypeError(
                f"{where}: parameter {name!r} is positional-only; handlers and dependencies are called "
                "with keyword arguments. Remove the '/' from the signature."
            )
        annotation = hints.get(name, parameter.annotation)
        marker, default = _marker_of(annotation, parameter.default, where, name)
        param = _plan_param(name, annotation, marker, default, path_params, where, _handler or where, (*_stack, func))
        if param.kind == "websocket":
            if websocket_param is not None:
                raise TypeError(
                    f"{where}: both {websocket_param!r} and {name!r} would receive the WebSocket; keep one."
                )
            websocket_param = name
        params.append(param)
    if is_handler and needs_websocket and websocket_param is None:
        raise TypeError(
            f"{where}: no parameter receives the WebSocket. Add 'websocket: WebSocket' "
            "to the signature (the names socket and ws work too)."
        )
    return Plan(tuple(params), where)


def _plan_param(
    name: str,
    annotation: Any,
    marker: Param | Dependency | None,
    default: Any,
    path_params: Mapping[str, type],
    where: str,
    handler: str,
    stack: tuple[Any, ...],
) -> Slot:
    markers = (Param, Dependency)
    unresolved = isinstance(annotation, _Unresolved)
    bare = annotation is _EMPTY or annotation is Any or unresolved
    if isinstance(marker, Dependency):
        func = marker.dependency
        if func in stack:
            chain = " -> ".join(qualname(f) for f in (*stack[1:], func))
            raise TypeError(f"{where}: dependency cycle {chain}; a dependency cannot depend on itself.")
        plan = plan_for(func, path_params, _handler=handler, _stack=stack)
        dep = Call(func, plan, _call_kind(func), marker.use_cache, qualname(func))
        return Slot(name, "inject", dependency=dep)
    if isinstance(marker, Param):
        _need_type(annotation, where, name)
        target = _default_type(marker.default) if bare else annotation
        if target is None:
            target = str
        spec = spec_for(target, f"{where}: parameter {name!r}", markers=markers)
        if isinstance(marker, CookieParam) and spec.many:
            raise TypeError(f"{where}: cookie parameter {name!r} is a list; a cookie carries one value.")
        fields = _model_fields(spec.model, marker) if spec.model is not None else ()
        return Slot(
            name, marker.source, key=marker.key(name), spec=spec, default=marker.default, marker=marker, fields=fields
        )
    if _is_websocket_annotation(annotation) or (
        name in WEBSOCKET_NAMES
        and name not in path_params
        and (annotation is _EMPTY or (unresolved and annotation.text.split(".")[-1] == "WebSocket"))
    ):
        return Slot(name, "websocket")
    if name in path_params:
        if bare and not unresolved:
            return Slot(name, "path")
        _need_type(annotation, where, name)
        if annotation is path_params[name]:
            return Slot(name, "path")
        problem = f"{where}: path parameter {name!r} is annotated {annotation!r};"
        path_spec: Spec | None
        try:
            path_spec = spec_for(annotation, f"{where}: path parameter {name!r}")
        except TypeError:
            path_spec = None
        if path_spec is None or path_spec.many or path_spec.model is not None:
            raise TypeError(
                f"{problem} annotate it str, int, float, bool, uuid.UUID, an Enum or a Literal "
                "(or a pydantic-validated single value), or leave it unannotated."
            )
        return Slot(name, "path", spec=path_spec)
    user = _user_kind(annotation) if not bare else None
    if name == "user" and unresolved:  # User or AnonymousUser? The difference is who gets in.
        _need_type(annotation, where, name)
    if user is not None or (name == "user" and bare):
        required, optional = user or (False, False)
        user_default = default if default is not _EMPTY else (None if optional else REQUIRED)
        return Slot(name, "user", default=user_default, user_required=required)
    if name in RESERVED_NAMES and not unresolved and (bare or _is_mapping_annotation(annotation)):
        return Slot(name, "reserved", key=name)
    # FastAPI's and Ravyn's rule: a plain parameter is a query parameter (required without a default).
    if bare and not unresolved:
        target = _default_type(default)
        if target is not None:
            query = QueryParam(REQUIRED if default is _EMPTY else default)
            return Slot(name, "query", key=name, spec=spec_for(target, where), default=query.default, marker=query)
    elif not unresolved and is_simple(annotation):
        query = QueryParam(REQUIRED if default is _EMPTY else default)
        spec = spec_for(annotation, f"{where}: parameter {name!r}", markers=markers)
        return Slot(name, "query", key=name, spec=spec, default=query.default, marker=query)
    if default is not _EMPTY:
        return Slot(name, "keep")
    _need_type(annotation, where, name)
    path_names = ", ".join(sorted(path_params)) or "none"
    raise TypeError(
        f"{where}: parameter {name!r} cannot be filled: {_type_name(annotation)} is not a type a query parameter "
        "can take. Parameters are filled with the WebSocket (annotate it 'WebSocket' or name it websocket, "
        f"socket or ws), the route's path parameters ({path_names}), the user ('user'), query parameters "
        "(str, int, float, bool, UUID, Enum, Literal, or lists of them), or what Query(), Header(), Cookie() "
        f"or Inject() declare. Add '{{{name}}}' to the path, declare its source (e.g. "
        f"'{name}: str = Query()'), or give {name!r} a default."
    )
