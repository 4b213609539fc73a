"""``manage.py ws_schema``: an AsyncAPI 3.0 document of the topic sockets, checked by a validator."""

from __future__ import annotations

import io
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from ravyn_channels.topics.schema import asyncapi_document

from . import test_topics

with warnings.catch_warnings():  # asyncapi3's models shadow BaseModel.schema (a UserWarning at import)
    warnings.simplefilter("ignore")
    from asyncapi3.models.asyncapi import AsyncAPI3

KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def check_structure(doc: dict[str, Any]) -> None:
    """The required fields of AsyncAPI 3.0 and every reference resolving inside the document."""
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    for key, channel in doc["channels"].items():
        assert KEY.match(key) and isinstance(channel["address"], str)
        for name in re.findall(r"{([^}]+)}", channel["address"]):
            assert name in channel["parameters"]
    for key, operation in doc["operations"].items():
        assert KEY.match(key) and operation["action"] in ("send", "receive")
        channel = resolve(doc, operation["channel"]["$ref"])
        for message in operation["messages"]:
            assert resolve(doc, message["$ref"]) in channel["messages"].values()
    for ref in refs(doc):
        resolve(doc, ref)


def test_ws_schema_writes_a_valid_asyncapi_3_document() -> None:
    out = io.StringIO()
    call_command("ws_schema", "--title", "Test topics", "--server", "wss://chat.example", stdout=out)
    doc = json.loads(out.getvalue())
    AsyncAPI3.model_validate(doc)
    check_structure(doc)
    assert doc["servers"]["default"] == {
        "host": "chat.example",
        "protocol": "wss",
        "description": "Offer the subprotocol ravyn.topics.v1.",
    }


def test_events_and_payload_schemas_come_from_the_annotations() -> None:
    doc = asyncapi_document([test_topics.live])
    channel = doc["channels"]["tests-live_room-room_id-int"]
    assert channel["address"] == "room:{room_id}" and set(channel["parameters"]) == {"room_id"}
    message = channel["messages"]["message"]["payload"]["properties"]["payload"]
    assert message == {"$ref": "#/components/schemas/ChatMessage"}
    model = doc["components"]["schemas"]["ChatMessage"]
    assert model["required"] == ["text"] and model["properties"]["urgent"]["type"] == "boolean"
    typing_payload = channel["messages"]["typing"]["payload"]["properties"]["payload"]
    assert resolve(doc, typing_payload["$ref"])["required"] == ["nick", "typing"]  # a dataclass
    operation = doc["operations"]["tests-live_room-room_id-int_message"]
    assert operation["action"] == "receive" and operation["x-ravyn-handler"].endswith("test_topics.message")
    assert operation["reply"]["messages"] == [{"$ref": "#/channels/tests-live_room-room_id-int/messages/message_reply"}]
    assert "tests-live_lobby_presence" in doc["operations"]
    AsyncAPI3.model_validate(doc)
    check_structure(doc)


def test_ws_schema_output_file(tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.json"
    err = io.StringIO()
    call_command("ws_schema", "-o", str(target), stderr=err)
    assert json.loads(target.read_text())["asyncapi"] == "3.0.0"
    assert f"to {target}" in err.getvalue()


def test_the_validator_refuses_a_broken_document() -> None:
    doc = asyncapi_document([test_topics.live])
    del doc["info"]
    with pytest.raises(ValueError):
        AsyncAPI3.model_validate(doc)
    broken = asyncapi_document([test_topics.live])
    next(iter(broken["operations"].values()))["channel"]["$ref"] = "#/channels/nowhere"
    with pytest.raises(AssertionError, match="does not resolve"):
        check_structure(broken)


def test_a_topic_with_history_documents_positions_and_resync() -> None:
    from . import test_topics_history

    doc = asyncapi_document([test_topics_history.live])
    AsyncAPI3.model_validate(doc)
    check_structure(doc)
    kept = next(c for c in doc["channels"].values() if c["title"] == "kept:{name}")
    bare = next(c for c in doc["channels"].values() if c["title"] == "bare:{name}")
    resync = kept["messages"]["resync"]["payload"]
    assert resync["properties"]["payload"]["properties"]["reason"]["enum"] == [
        "malformed",
        "epoch",
        "future",
        "expired",
    ]
    assert "position" in kept["messages"]["join"]["payload"]["properties"]
    assert "position" in kept["messages"]["join_reply"]["payload"]["properties"]
    assert "resync" not in bare["messages"] and "position" not in bare["messages"]["join"]["payload"]["properties"]
