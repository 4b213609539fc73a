"""The topic frames' text: the direct encoders write what encoding the frame dicts writes."""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from ravyn_channels.topics import protocol


class Model(BaseModel):
    text: str


@dataclasses.dataclass
class Point:
    x: int
    y: int


VALUES: list[Any] = [
    "plain",
    'quote " backslash \\ newline \n tab \t nul \x00',
    "héllo ☃ 😀",
    "",
    0,
    -7,
    1.5,
    None,
    True,
    [],
    {},
    {"a": [1, 2, {"b": None}], "é": "ü"},
    Model(text="hi"),
    Point(1, 2),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    datetime.date(2026, 11, 30),
    {1, 2},
    ("t", 1),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("ref", [None, "7", 'r"ef', 42, 0])
def test_reply_text_is_the_encoded_reply_frame(value: Any, ref: Any) -> None:
    for status in ("ok", "error"):
        frame = protocol.reply_frame('room:"1"', ref, status, value)
        text = protocol.reply_text('room:"1"', ref, status, value)
        assert text == json.dumps(frame, separators=(",", ":"), ensure_ascii=False, default=protocol._default)
        assert text == protocol.encode(frame)


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_message_text_is_the_encoded_message_frame(value: Any) -> None:
    frame = protocol.message_frame("room:ü", "new\nline", value)
    text = protocol.message_text("room:ü", "new\nline", value)
    assert text == json.dumps(frame, separators=(",", ":"), ensure_ascii=False, default=protocol._default)
    assert json.loads(text)["topic"] == "room:ü"


def test_unencodable_values_raise_type_or_value_errors() -> None:
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        protocol.reply_text("t", 1, "ok", object())
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="circular"):
        protocol.message_text("t", "e", {"loop": loop})
    # The encoder is still usable afterwards (no state left behind by the failures).
    assert protocol.encode({"loop": [[1]]}) == '{"loop":[[1]]}'


@pytest.mark.parametrize(
    "text",
    [
        '{"topic":"t","event":"e"}',
        '{"topic":"t","event":"e","payload":[1],"ref":3}',
        '{"topic":"t","event":"e","ref":null}',
        '{"topic":"t","event":"join","ref":"j","position":"3:7"}',
        ' \n{"topic":"t","event":"e"}\t ',
        '{"topic":"' + "t" * 255 + '","event":"e","ref":"' + "r" * 255 + '"}',
    ],
)
def test_valid_frames_parse(text: str) -> None:
    data = json.loads(text)
    frame = protocol.parse(text)
    assert (frame.topic, frame.event, frame.payload, frame.ref, frame.position) == (
        data["topic"], data["event"], data.get("payload", {}), data.get("ref"), data.get("position"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[1]", "a frame is a JSON object, got list"),
        ("[" * 100_000, "JSON nested too deeply"),
        ('{"topic":"t","event":"e"} x', "not JSON"),
        ('{"topic":"t","event":"e","ref":true}', "'ref' must be a string"),
        ('{"topic":"t","event":"e","ref":1.5}', "'ref' must be a string"),
        ('{"topic":"t","event":"e","ref":"' + "r" * 256 + '"}', "'ref' must be a string"),
        ('{"topic":"","event":"e"}', "missing or empty 'topic'"),
        ('{"topic":"t","event":7}', "missing or empty 'event'"),
        ('{"topic":"' + "t" * 256 + '","event":"e"}', "'topic' is longer than 255"),
        ('{"topic":"t","event":"' + "e" * 256 + '"}', "'event' is longer than 255"),
    ],
)
def test_invalid_frames_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(protocol.FrameError, match=reason.replace("(", r"\(")):
        protocol.parse(text)
