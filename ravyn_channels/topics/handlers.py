"""Topic handlers: read once at declaration, called per join or event.

A join or event handler is an ``async def`` whose parameters are filled like a
``@websocket`` handler's (``signatures.plan_for``: the ``WebSocket``, the
topic's parameters by name, the user, ``Query``/``Header``/``Cookie`` of the
handshake, ``Inject`` dependencies), plus ``payload``: the frame's payload,
validated against its annotation (a pydantic model, a dataclass, any type
pydantic's ``TypeAdapter`` takes) when it has one.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..coerce import pydantic_available
from ..params import qualname
from ..resolver import Cleanup, Plan, run_cleanups
from ..signatures import _annotations, plan_for
from ..websocket import WebSocket

__all__ = ["PAYLOAD", "InvalidPayload", "Joined", "TopicError", "TopicHandler"]

#: The parameter that receives a frame's payload.
PAYLOAD = "payload"


class TopicError(Exception):
    """Raise in a join or event handler to answer with an error reply.

    The client gets ``{"status": "error", "response": {"reason": reason}}``
    (plus ``"details"`` when given: JSON data); the socket and its other
    topics carry on, and nothing is logged. In a join handler it refuses the join.
    """

    def __init__(self, reason: str, details: Any = None):
        self.reason = reason
        self.details = details
        super().__init__(reason)

    def response(self) -> dict[str, Any]:
        """The reply's ``response`` object."""
        out: dict[str, Any] = {"reason": self.reason}
        if self.details is not None:
            out["details"] = self.details
        return out


class Joined:
    """What a join handler may return to set the member's presence ``meta`` along with its reply.

    ``return Joined({"welcome": nick}, meta={"nick": nick})``: the client gets the
    first argument as the join reply; on a topic with ``presence=True`` every
    member sees ``meta`` (JSON data) in this member's presence entry.
    """

    __slots__ = ("meta", "response")

    def __init__(self, response: Any = None, *, meta: dict[str, Any] | None = None):
        self.response = response
        self.meta = meta


class InvalidPayload(TopicError):
    """A payload that does not fit the handler's annotation; ``errors`` name each field."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        fields = ", ".join(e["field"] or "payload" for e in errors)
        super().__init__(f"invalid payload ({fields})")

    def response(self) -> dict[str, Any]:
        return {"reason": self.reason, "errors": self.errors}


def _validator(annotation: Any, where: str) -> Callable[[Any], Any] | None:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    if not pydantic_available():
        raise TypeError(
            f"{where}: 'payload' is annotated {annotation!r}, which needs pydantic to validate. "
            "Install pydantic (pip install pydantic), or leave 'payload' unannotated."
        )
    from pydantic import TypeAdapter, ValidationError

    try:
        adapter: Any = TypeAdapter(annotation)
    except Exception as exc:
        raise TypeError(f"{where}: pydantic cannot validate 'payload: {annotation!r}' ({exc}).") from None

    def validate(value: Any) -> Any:
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(str(p) for p in error.get("loc", ())), "message": str(error.get("msg", ""))}
                for error in exc.errors()[:20]
            ]
            raise InvalidPayload(errors) from None

    validate.annotation = annotation  # type: ignore[attr-defined]
    return validate


class TopicHandler:
    """One join or event handler, with its plan (parameters) and payload validator."""

    def __init__(self, func: Callable[..., Awaitable[Any]], param_types: Mapping[str, type], what: str):
        where = qualname(func)
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"{where}: {what} handlers must be 'async def' functions.")
        self.func = func
        self.qualname = where
        signature = inspect.signature(func)
        hints = _annotations(func, signature)
        payload = signature.parameters.get(PAYLOAD)
        self.takes_payload = payload is not None
        self.payload_annotation: Any = hints.get(PAYLOAD, inspect.Parameter.empty) if payload else None
        if payload is not None and PAYLOAD in param_types:
            raise TypeError(f"{where}: the topic has a parameter named 'payload'; rename it in the pattern.")
        self.validate = _validator(self.payload_annotation, where) if payload is not None else None
        rest = [
            p.replace(annotation=hints.get(name, p.annotation))
            for name, p in signature.parameters.items()
            if name != PAYLOAD
        ]

        def shim(**kwargs: Any) -> None: ...

        shim.__signature__ = signature.replace(parameters=rest)  # type: ignore[attr-defined]
        shim.__annotations__ = {p.name: p.annotation for p in rest if p.annotation is not p.empty}
        shim.__module__ = func.__module__
        shim.__qualname__ = func.__qualname__
        shim.__name__ = func.__name__
        self.plan: Plan = plan_for(shim, param_types, needs_websocket=False)
        # Only the WebSocket and topic parameters (already converted): no resolution per call.
        self._direct: tuple[tuple[str, str], ...] | None = (
            tuple((slot.name, slot.kind) for slot in self.plan.params if slot.kind != "keep")
            if all(slot.kind in ("websocket", "keep") or (slot.kind == "path" and slot.spec is None)
                   for slot in self.plan.params)
            else None
        )  # fmt: skip

    async def call(
        self, websocket: WebSocket, params: Mapping[str, Any], payload: Any, cleanups: list[Cleanup] | None = None
    ) -> Any:
        """Run the handler; generator dependencies exit at once unless ``cleanups`` keeps them."""
        value = payload
        if self.validate is not None:
            value = self.validate(payload)
        if self._direct is not None:
            kwargs = {name: websocket if kind == "websocket" else params[name] for name, kind in self._direct}
            if self.takes_payload:
                kwargs[PAYLOAD] = value
            return await self.func(**kwargs)
        own: list[Cleanup] = [] if cleanups is None else cleanups
        try:
            kwargs = await self.plan.resolve(websocket, params, own)
            if self.takes_payload:
                kwargs[PAYLOAD] = value
            return await self.func(**kwargs)
        finally:
            if cleanups is None:
                await run_cleanups(own)

    def __repr__(self) -> str:
        return f"<TopicHandler {self.qualname}>"


