"""The wire format of a topic socket, version 1 (subprotocol ``ravyn.topics.v1``).

Every frame, both ways, is one JSON object in a text frame::

    {"topic": "room:42", "event": "message", "payload": {...}, "ref": "7"}

``topic`` and ``event`` are strings; ``payload`` is any JSON value (``{}`` when
left out); ``ref`` (a string or an integer, optional) is chosen by the client and
echoed in the ``reply`` to that frame. Reserved events:

============ =========== ================================================================
event        direction   meaning
============ =========== ================================================================
``join``     client →    join ``topic``; ``payload`` goes to the join handler
``leave``    client →    leave ``topic``
``heartbeat`` client →   keep the socket alive (topic ``"ravyn"``); replied ``ok``
``reply``    ← server    ``{"status": "ok", "response": ...}`` or
                         ``{"status": "error", "response": {"reason": ..., "errors"?: [...]}}``
``error``    ← server    a frame that could not be answered with a reply (no ``ref``, not
                         JSON): ``{"reason": ...}``
``presence`` ← server    ``presence_state`` / ``presence_diff`` of a topic with ``presence=True``
``resync``   ← server    a topic with history could not continue from the client's position:
                         ``{"reason": "malformed" | "epoch" | "future" | "expired"}``
============ =========== ================================================================

Topics with history (``live.topic(..., history=HistoryConfig(...))``) add one
top-level key, ``"position": "<epoch>:<offset>"``, to every push kept in the
history, to every ``resync`` and to the ``ok`` reply of a join; a client sends
its last one back as the ``"position"`` of a ``join`` frame to receive what it
missed. Frames of topics without history never carry it.

Close codes of a topic socket (besides the library's usual ones, 1009 for an
oversized frame and 1011 for a crash of the socket itself): ``4408`` when no
frame arrived within ``TOPICS_HEARTBEAT_TIMEOUT`` seconds. Any other malformed
frame is answered, never closed on.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import json.decoder
import json.encoder
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from ..presence import member_id, public_members

__all__ = [
    "CLOSE_HEARTBEAT_TIMEOUT",
    "PROTOCOL",
    "RESERVED_EVENTS",
    "SOCKET_TOPIC",
    "Frame",
    "FrameError",
    "ReplyError",
    "encode",
    "error_frame",
    "history_frame",
    "member_id",
    "message_frame",
    "message_text",
    "parse",
    "public_presence",
    "reply_frame",
    "reply_text",
]

#: The subprotocol a client offers (and the server accepts) for this version.
PROTOCOL = "ravyn.topics.v1"
#: The topic of socket-level frames (heartbeats).
SOCKET_TOPIC = "ravyn"
#: Events with a meaning of their own: no handler may be declared for them.
RESERVED_EVENTS = frozenset({"join", "leave", "reply", "error", "heartbeat", "presence", "resync"})
#: The server closes a socket that sent nothing within the heartbeat window with this code.
CLOSE_HEARTBEAT_TIMEOUT = 4408
#: Longest topic or event name accepted, in characters.
MAX_NAME = 255

Ref = str | int


class Frame(NamedTuple):
    """One client frame, checked: ``topic``, ``event``, ``payload`` and ``ref`` (immutable; a named
    tuple, made for every frame at a third of a frozen dataclass's cost).

    ``position`` is the raw ``"position"`` of a ``join`` (``None`` when absent):
    the topic's history checks it (a malformed one gets a ``resync``).
    """

    topic: str
    event: str
    payload: Any
    ref: Ref | None
    position: Any = None


class FrameError(ValueError):
    """A client frame that is not a valid v1 frame; ``ref`` is set when the frame had a usable one."""

    def __init__(self, reason: str, ref: Ref | None = None, topic: str | None = None):
        self.reason = reason
        self.ref = ref
        self.topic = topic
        super().__init__(reason)


def _ref(data: dict[str, Any]) -> Ref | None:
    ref = data.get("ref")
    if ref is None or (isinstance(ref, str) and len(ref) <= MAX_NAME) or (type(ref) is int):
        return ref
    return None


_scan: Callable[[str, int], tuple[Any, int]] = getattr(json.decoder.JSONDecoder(), "scan_once")  # noqa: B009  (untyped)


def _loads(text: str) -> Any:
    """``json.loads(text)``, straight to the scanner for a frame without surrounding whitespace
    (``json.loads`` checks and strips that in Python first); anything else goes to ``json.loads``."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def parse(text: str | None) -> Frame:
    """A ``Frame`` from a text frame's content, or ``FrameError`` saying what is wrong."""
    if text is None:
        raise FrameError("binary frames are not part of ravyn.topics.v1; send JSON text frames")
    try:
        data = _loads(text)
    except ValueError:
        raise FrameError("not JSON: send one JSON object per text frame") from None
    except RecursionError:  # "[[[[...": deeper than Python's decoder can follow
        raise FrameError("JSON nested too deeply: send one JSON object per text frame") from None
    if type(data) is dict:
        # The usual frame, checked in one expression (json.loads makes exact str and int objects).
        topic, event, ref = data.get("topic"), data.get("event"), data.get("ref")
        if (
            type(topic) is str
            and type(event) is str
            and 0 < len(topic) <= MAX_NAME
            and 0 < len(event) <= MAX_NAME
            and (ref is None or type(ref) is int or (type(ref) is str and len(ref) <= MAX_NAME))
        ):
            return Frame(topic, event, data.get("payload", {}), ref, data.get("position"))
    return _refuse(data)


def _refuse(data: Any) -> Frame:
    """``FrameError`` naming what is wrong with a decoded frame that is not a valid v1 frame."""
    if not isinstance(data, dict):
        raise FrameError(f"a frame is a JSON object, got {type(data).__name__}")
    ref = _ref(data)
    if "ref" in data and data["ref"] is not None and ref is None:
        raise FrameError("'ref' must be a string (at most 255 characters) or an integer")
    topic, event = data.get("topic"), data.get("event")
    for field, value in (("topic", topic), ("event", event)):
        if not isinstance(value, str) or not value:
            raise FrameError(f"missing or empty {field!r} (a string)", ref, topic if isinstance(topic, str) else None)
        if len(value) > MAX_NAME:
            raise FrameError(f"{field!r} is longer than {MAX_NAME} characters", ref)
    assert isinstance(topic, str) and isinstance(event, str)
    return Frame(topic, event, data.get("payload", {}), ref, data.get("position"))


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # a pydantic model
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_default)


def _fast_encoder() -> Callable[[Any], str] | None:
    """The C encoder built once (``json.dumps`` builds one per call), or ``None`` where it is missing
    or its signature differs; without circular-reference markers (a cycle raises ``RecursionError``)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    quote = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or quote is None:
        return None
    try:
        chunks = make(None, _default, quote, None, ":", ",", False, False, True)
        if "".join(chunks({"a": [1.5, None, "é"]}, 0)) != '{"a":[1.5,null,"é"]}':
            return None
    except Exception:
        return None
    return lambda value: "".join(chunks(value, 0))


_encode_fast = _fast_encoder()
_quote: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring


def encode(frame: Any) -> str:
    """JSON text of a server frame; pydantic models, dataclasses, UUIDs and dates are converted.

    Raises ``TypeError`` or ``ValueError`` (a circular structure, too deep a nesting) for what
    JSON cannot hold.
    """
    if _encode_fast is None:
        return _ENCODER.encode(frame)
    try:
        return _encode_fast(frame)
    except RecursionError:
        raise ValueError("circular reference (or nesting deeper than Python's recursion limit)") from None


def _value(value: Any) -> str:
    return _quote(value) if type(value) is str else encode(value)


def _ref_text(ref: Ref | None) -> str:
    if ref is None:
        return "null"
    return str(ref) if type(ref) is int else _quote(str(ref))


def message_frame(topic: str, event: str, payload: Any) -> dict[str, Any]:
    """A server push: ``event`` with ``payload`` on ``topic``."""
    return {"topic": topic, "event": event, "payload": payload}


def message_text(topic: str, event: str, payload: Any) -> str:
    """``encode(message_frame(topic, event, payload))``, with only the payload going through the encoder."""
    return f'{{"topic":{_quote(topic)},"event":{_quote(event)},"payload":{_value(payload)}}}'


def reply_frame(topic: str, ref: Ref | None, status: str, response: Any) -> dict[str, Any]:
    """The ``reply`` to the client frame numbered ``ref``."""
    return {"topic": topic, "event": "reply", "ref": ref, "payload": {"status": status, "response": response}}


def reply_text(topic: str, ref: Ref | None, status: str, response: Any) -> str:
    """``encode(reply_frame(...))``, with only the response going through the encoder."""
    return (
        f'{{"topic":{_quote(topic)},"event":"reply","ref":{_ref_text(ref)},'
        f'"payload":{{"status":{_quote(status)},"response":{_value(response)}}}}}'
    )


def history_frame(envelope: Any) -> str:
    """The text of a history ``Envelope`` of a topic: the push with its ``position``, or a ``resync``.

    A topic's broadcasts are stored as the push's JSON text, so a message is that
    text with ``"position"`` added; anything else broadcast to the topic's room
    directly through its manager keeps the manager's JSON envelope.
    """
    position = str(envelope.position)
    if envelope.type == "resync":
        frame = message_frame(envelope.room, "resync", {"reason": envelope.reason})
        return encode({**frame, "position": position})
    data = envelope.data
    if envelope.kind == "text" and isinstance(data, str) and data.startswith('{"topic":') and data.endswith("}"):
        return f'{data[:-1]},"position":"{position}"}}'
    from ..history import json_envelope

    return json_envelope(envelope)


def public_presence(change: dict[str, Any], me: str | None = None) -> dict[str, Any]:
    """A manager's presence change as clients see it: ``{member_id: {"meta": ...}}`` entries.

    The same publication as raw presence frames (``ravyn_channels.presence.public_members``):
    only the ``meta`` the join handler gave, under an opaque member id, so the application
    decides what every member of a topic may see of the others. A ``presence_state``
    also says which entry is the receiving socket (``me``).
    """
    out: dict[str, Any] = {"type": change.get("type")}
    for key in ("members", "joins", "leaves"):
        entries = change.get(key)
        if isinstance(entries, dict):
            out[key] = public_members(entries)
    if change.get("type") == "presence_state" and me is not None:
        out["me"] = me
    return out


def error_frame(topic: str | None, reason: str, ref: Ref | None = None) -> dict[str, Any]:
    """An ``error`` event: a frame that could not be answered with a reply."""
    return {"topic": topic, "event": "error", "ref": ref, "payload": {"reason": reason}}


class ReplyError(Exception):
    """A ``reply`` with status ``error`` (raised by the clients): ``reason`` and the whole ``response``."""

    def __init__(self, topic: str, event: str, response: Any):
        self.topic = topic
        self.event = event
        self.response = response
        self.reason = str(response.get("reason", "")) if isinstance(response, dict) else str(response)
        #: The server asks to try again later (``"retry": true``: a join while the history store is unreachable).
        self.retry = isinstance(response, dict) and response.get("retry") is True
        super().__init__(f"{event} on {topic!r} refused: {self.reason}")
