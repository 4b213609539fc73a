"""An AsyncAPI 3.0 document of every topic, event and payload (``manage.py ws_schema``).

Each topic pattern is a channel (``address: "room:{room_id}"`` with its
parameters); each event handler and the join are operations the application
``receive``s, with a ``reply`` on the same channel; topics with presence also
``send`` presence frames. Message payloads are the whole ``ravyn.topics.v1``
frame, its ``payload`` described by the handler's annotation (pydantic's JSON
schema; models go to ``components.schemas``) and the reply by the handler's
return annotation.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from . import protocol
from .handlers import TopicHandler
from .registry import Topic, TopicSocket, registered_sockets

__all__ = ["asyncapi_document"]

_KEY_JUNK = re.compile(r"[^A-Za-z0-9_\-]+")
_EMPTY = inspect.Parameter.empty
_ANY: dict[str, Any] = {}


def _key(*parts: str) -> str:
    return "_".join(_KEY_JUNK.sub("-", part).strip("-") or "root" for part in parts)


class _Schemas:
    """Collects JSON schemas, moving pydantic's ``$defs`` into ``components.schemas``."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, annotation: Any) -> dict[str, Any]:
        if annotation is _EMPTY or annotation is Any or annotation is None:
            return dict(_ANY)
        try:
            from pydantic import TypeAdapter

            schema: dict[str, Any] = TypeAdapter(annotation).json_schema(
                ref_template="#/components/schemas/{model}", mode="validation"
            )
        except Exception:  # not a type pydantic can describe (or no pydantic): say nothing about it
            return dict(_ANY)
        for name, definition in schema.pop("$defs", {}).items():
            self.components.setdefault(name, definition)
        if isinstance(annotation, type) and schema.get("type") == "object":  # a model or dataclass: by reference
            name = _KEY_JUNK.sub("-", annotation.__name__)
            while self.components.get(name, schema) != schema:
                name += "_"
            self.components[name] = schema
            return {"$ref": f"#/components/schemas/{name}"}
        return schema


def _return_annotation(handler: TopicHandler) -> Any:
    func = handler.func
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        return _EMPTY
    value = hints.get("return", _EMPTY)
    return _EMPTY if value is type(None) else value


def _frame(event: str | None, payload: dict[str, Any], *, ref: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "topic": {"type": "string", "description": "The topic name, e.g. room:42."},
        "event": {"const": event} if event is not None else {"type": "string"},
        "payload": payload,
    }
    if ref:
        properties["ref"] = {"type": ["string", "integer"], "description": "Echoed in the reply."}
    return {"type": "object", "required": ["topic", "event"], "properties": properties}


def _reply(response: dict[str, Any]) -> dict[str, Any]:
    error = {
        "type": "object",
        "required": ["reason"],
        "properties": {
            "reason": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
            "details": {},
        },
    }
    return _frame(
        "reply",
        {
            "oneOf": [
                {"type": "object", "properties": {"status": {"const": "ok"}, "response": response}},
                {"type": "object", "properties": {"status": {"const": "error"}, "response": error}},
            ]
        },
        ref=True,
    )


def _describe_param(python_type: type) -> str:
    return f"Topic parameter ({python_type.__name__}, the route converter of the same name)."


def _topic_parts(socket: TopicSocket, topic: Topic, schemas: _Schemas, doc: dict[str, Any]) -> None:
    channel_key = _key(socket.path, topic.pattern)
    address = re.sub(r"{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^{}]*)?}", r"{\1}", topic.pattern)
    messages: dict[str, Any] = {}
    channel: dict[str, Any] = {
        "address": address,
        "title": topic.pattern,
        "description": f"Topic {topic.pattern!r} on the topic socket {socket.path} ({protocol.PROTOCOL}).",
        "messages": messages,
        "x-ravyn-socket": socket.path,
    }
    if topic.param_types:
        channel["parameters"] = {name: {"description": _describe_param(t)} for name, t in topic.param_types.items()}
    doc["channels"][channel_key] = channel
    ref = f"#/channels/{channel_key}/messages/"

    def operation(event: str, handler: TopicHandler | None, summary: str) -> None:
        payload = schemas.of(handler.payload_annotation if handler and handler.takes_payload else _EMPTY)
        response = schemas.of(_return_annotation(handler)) if handler is not None else dict(_ANY)
        name, reply_name = _key(event), _key(event, "reply")
        messages[name] = {
            "name": event,
            "title": f"{event} on {topic.pattern}",
            "payload": _frame(event, payload, ref=True),
        }
        messages[reply_name] = {"name": f"{event} reply", "payload": _reply(response)}
        body: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_key}"},
            "summary": summary,
            "messages": [{"$ref": ref + name}],
            "reply": {"channel": {"$ref": f"#/channels/{channel_key}"}, "messages": [{"$ref": ref + reply_name}]},
        }
        if handler is not None:
            body["x-ravyn-handler"] = handler.qualname
        doc["operations"][_key(socket.path, topic.pattern, event)] = body

    join = topic.join_handler
    operation("join", join, "Join the topic (authorized by the join handler and the topic's permissions).")
    if topic.history is not None:
        _history_parts(socket, topic, messages, doc, ref)
    operation("leave", None, "Leave the topic.")
    for event, handler in topic.handlers.items():
        operation(event, handler, (inspect.getdoc(handler.func) or f"The {event!r} event.").splitlines()[0])
    if topic.presence:
        messages["presence"] = {
            "name": "presence",
            "payload": _frame(
                "presence",
                {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {"enum": ["presence_state", "presence_diff"]},
                        "members": {"type": "object"},
                        "joins": {"type": "object"},
                        "leaves": {"type": "object"},
                    },
                },
                ref=False,
            ),
        }
        doc["operations"][_key(socket.path, topic.pattern, "presence")] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_key}"},
            "summary": "Members of the topic: presence_state after each join, then presence_diff per change.",
            "messages": [{"$ref": ref + "presence"}],
        }


_POSITION = {"type": "string", "description": "A position in the topic's history: '<epoch>:<offset>'."}


def _history_parts(socket: TopicSocket, topic: Topic, messages: dict[str, Any], doc: dict[str, Any], ref: str) -> None:
    """A topic with history: joins may carry a position, pushes carry theirs, and ``resync`` is sent."""
    channel = doc["channels"][_key(socket.path, topic.pattern)]
    channel["description"] += (
        " Its pushes carry their history position; a join with the last one received replays the "
        "pushes missed, or is answered with a resync."
    )
    for name in (_key("join"), _key("join", "reply")):
        messages[name]["payload"]["properties"]["position"] = _POSITION
    resync = _frame(
        "resync",
        {
            "type": "object",
            "required": ["reason"],
            "properties": {"reason": {"enum": ["malformed", "epoch", "future", "expired"]}},
        },
        ref=False,
    )
    resync["properties"]["position"] = _POSITION
    resync["required"] = ["topic", "event", "position"]
    messages["resync"] = {"name": "resync", "payload": resync}
    doc["operations"][_key(socket.path, topic.pattern, "resync")] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{_key(socket.path, topic.pattern)}"},
        "summary": "The join's position could not be continued: reload the topic's state; pushes after it follow.",
        "messages": [{"$ref": ref + "resync"}],
    }


def asyncapi_document(
    sockets: Iterable[TopicSocket] | None = None,
    *,
    title: str = "Topics",
    version: str = "1.0.0",
    server: str | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a dict, ready for ``json.dumps``) of ``sockets`` (default: all)."""
    schemas = _Schemas()
    doc: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                f"Topic sockets speaking {protocol.PROTOCOL}: JSON frames {{topic, event, payload, ref}} "
                "over one websocket; offer the subprotocol on connect. Every client frame with a ref "
                f"gets one reply. A socket silent for TOPICS_HEARTBEAT_TIMEOUT is closed with "
                f"{protocol.CLOSE_HEARTBEAT_TIMEOUT}."
            ),
        },
        "defaultContentType": "application/json",
        "channels": {},
        "operations": {},
    }
    if server:
        parts = urlsplit(server)
        doc["servers"] = {
            "default": {
                "host": parts.netloc or server,
                "protocol": parts.scheme or "ws",
                "description": f"Offer the subprotocol {protocol.PROTOCOL}.",
            }
        }
    for socket in registered_sockets() if sockets is None else sockets:
        for topic in socket.topics:
            _topic_parts(socket, topic, schemas, doc)
    if schemas.components:
        doc["components"] = {"schemas": schemas.components}
    return doc
