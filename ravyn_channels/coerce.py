"""From the strings of a handshake to the types handler parameters are annotated with.

Path, query, header and cookie values arrive as strings. ``spec_for(annotation)``
reads an annotation once, at decoration time, and returns a ``Spec`` that
converts values at connection time: ``str``, ``int``, ``float``, ``bool``,
``uuid.UUID``, ``decimal.Decimal``, ``datetime``/``date``/``time``, enums and
``Literal`` need nothing else; ``X | None`` and ``list[X]`` (``tuple``, ``set``)
wrap them. Anything else (a pydantic model, ``Annotated[int, Field(gt=0)]``,
``conint(...)``) is validated by pydantic's ``TypeAdapter`` when pydantic is
installed; without it, such an annotation fails at decoration time.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

__all__ = ["Spec", "is_simple", "pydantic_available", "spec_for"]

Converter = Callable[[Any], Any]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_NONE = type(None)
_CONTAINERS: dict[Any, Callable[[Iterable[Any]], Any]] = {
    list: list,
    tuple: tuple,
    set: set,
    frozenset: frozenset,
    Sequence: list,
    typing.Sequence: list,
}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (use true/false, 1/0, yes/no or on/off)")


def _to_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _named(func: Converter, what: str) -> Converter:
    def convert(value: Any) -> Any:
        try:
            return func(value)
        except (TypeError, ValueError, ArithmeticError):
            raise ValueError(f"{value!r} is not {what}") from None

    return convert


_SCALARS: dict[Any, Converter] = {
    str: str,
    int: _named(int, "an integer"),
    float: _named(float, "a number"),
    bool: _to_bool,
    uuid.UUID: _named(_to_uuid, "a UUID"),
    decimal.Decimal: _named(lambda v: decimal.Decimal(str(v)), "a decimal number"),
    datetime.datetime: _named(datetime.datetime.fromisoformat, "an ISO 8601 date and time"),
    datetime.date: _named(datetime.date.fromisoformat, "an ISO 8601 date"),
    datetime.time: _named(datetime.time.fromisoformat, "an ISO 8601 time"),
}


def _enum_converter(cls: type[enum.Enum]) -> Converter:
    choices = ", ".join(str(m.value) for m in cls)

    def convert(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        for member in cls:
            if str(member.value) == str(value):
                return member
        raise ValueError(f"{value!r} is not one of {choices}")

    return convert


def _literal_converter(choices: tuple[Any, ...]) -> Converter:
    shown = ", ".join(repr(c) for c in choices)

    def convert(value: Any) -> Any:
        for choice in choices:
            if choice == value or str(choice) == str(value) or (isinstance(choice, bool) and _bool_eq(choice, value)):
                return choice
        raise ValueError(f"{value!r} is not one of {shown}")

    return convert


def _bool_eq(choice: bool, value: Any) -> bool:
    try:
        return _to_bool(value) is choice
    except ValueError:
        return False


def pydantic_available() -> bool:
    """Whether pydantic (v2) can be imported."""
    try:
        import pydantic

        return hasattr(pydantic, "TypeAdapter")
    except ImportError:
        return False


def _pydantic_converter(annotation: Any) -> Converter:
    from pydantic import TypeAdapter, ValidationError

    adapter = TypeAdapter(annotation)

    def convert(value: Any) -> Any:
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise ValueError(_summarise(exc)) from None

    return convert


def _summarise(exc: Any) -> str:
    parts = []
    for error in exc.errors()[:3]:
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "")
        parts.append(f"{loc}: {error['msg']}" if loc else str(error["msg"]))
    return "; ".join(parts) or str(exc)


def _is_model(annotation: Any) -> bool:
    if not isinstance(annotation, type):
        return False
    try:
        from pydantic import BaseModel
    except ImportError:
        return False
    return issubclass(annotation, BaseModel)


@dataclass(frozen=True)
class Spec:
    """How one parameter's raw values become its value."""

    #: Converts one raw value (or, for ``many``, the list of them; for ``model``, a dict).
    convert: Converter
    #: The parameter takes every value sent under its name (``list[X]``).
    many: bool = False
    #: ``None`` is a valid value (``X | None``).
    optional: bool = False
    #: A pydantic model filled from every value of its source (field name -> value).
    model: Any = None


def _split_annotated(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(annotation) is Annotated:
        return annotation.__origin__, tuple(annotation.__metadata__)
    return annotation, ()


def _union_args(annotation: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return None


def _scalar(annotation: Any) -> Converter | None:
    """A converter for one value of a type we handle without pydantic, or ``None``."""
    if annotation is Any or annotation is str:
        return str
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_converter(annotation)
    if typing.get_origin(annotation) is Literal:
        return _literal_converter(typing.get_args(annotation))
    return None


def _needs_pydantic(annotation: Any, where: str) -> Converter:
    if not pydantic_available():
        raise TypeError(
            f"{where} is annotated {annotation!r}, which needs pydantic to validate. "
            "Install pydantic (pip install pydantic), or annotate it str, int, float, bool, "
            "uuid.UUID, an Enum, a Literal, or a list or Optional of these."
        )
    return _pydantic_converter(annotation)


def spec_for(annotation: Any, where: str, *, markers: tuple[type, ...] = ()) -> Spec:
    """The ``Spec`` for a parameter annotated ``annotation`` (``where`` names it in errors).

    ``markers`` are ``Annotated`` metadata classes that describe the source
    (``Query()``, ...) rather than the value; they are ignored here.
    """
    base, metadata = _split_annotated(annotation)
    metadata = tuple(m for m in metadata if not isinstance(m, markers))
    if metadata:  # constraints (Field(gt=0), annotated_types.Gt(0), ...): pydantic's job
        full = Annotated[(base, *metadata)]  # type: ignore[valid-type]
        many = _container(base) is not None
        return Spec(_needs_pydantic(full, where), many=many, optional=_optional(base))
    optional = False
    args = _union_args(base)
    if args is not None and _NONE in args:
        optional = True
        rest = tuple(a for a in args if a is not _NONE)
        base = rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007
    if base is None or base is _NONE:
        raise TypeError(f"{where} is annotated None; give it a type such as str or int.")
    scalar = _scalar(base)
    if scalar is not None:
        return Spec(scalar, optional=optional)
    container = _container(base)
    if container is not None:
        make, item = container
        item_convert = _scalar(item)
        if item_convert is None:
            item_convert = _needs_pydantic(item, where)
        return Spec(lambda values: make(item_convert(v) for v in values), many=True, optional=optional)
    if _is_model(base):
        return Spec(_pydantic_converter(base), optional=optional, model=base)
    return Spec(_needs_pydantic(base, where), optional=optional)


def _optional(annotation: Any) -> bool:
    args = _union_args(annotation)
    return args is not None and _NONE in args


def _container(annotation: Any) -> tuple[Callable[[Iterable[Any]], Any], Any] | None:
    """``(constructor, item type)`` for ``list[X]``, ``tuple[X, ...]``, ``set[X]``..., else ``None``."""
    if annotation in _CONTAINERS:  # bare list / tuple: items are str
        return _CONTAINERS[annotation], str
    origin = typing.get_origin(annotation)
    if origin not in _CONTAINERS:
        return None
    args = typing.get_args(annotation)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple, args[0]
        return None  # fixed-length tuples: pydantic
    return _CONTAINERS[origin], (args[0] if args else str)


def is_simple(annotation: Any) -> bool:
    """Whether a value of this type can come from one query parameter (or several, for lists).

    Used for FastAPI's rule that a parameter with a default and such an
    annotation is a query parameter.
    """
    base, metadata = _split_annotated(annotation)
    if metadata:
        return False
    args = _union_args(base)
    if args is not None:
        return all(a is _NONE or _scalar(a) is not None for a in args)
    if _scalar(base) is not None:
        return True
    container = _container(base)
    return container is not None and _scalar(container[1]) is not None
