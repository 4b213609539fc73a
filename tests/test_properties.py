"""Hostile and random input (hypothesis): only documented refusals and close codes, never a crash."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any
from urllib.parse import quote

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ravyn_channels import WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.routing import websocket_urlpatterns
from ravyn_channels.testing import HandshakeRefused, connect

pytestmark = pytest.mark.django_db  # the consumer closes stale DB connections at its boundaries

seen: list[Any] = []


@websocket("/p/{value:int}/{f:float}/{u:uuid}/{s}/{rest:path}")
async def typed(websocket: WebSocket, value: int, f: float, u: Any, s: str, rest: str) -> None:
    seen.append((value, f, u, s, rest))
    await websocket.accept()
    await websocket.close()


@websocket("/q")
async def inspect_request(websocket: WebSocket) -> None:
    facts = {
        "query": {k: websocket.query_params.getlist(k) for k in websocket.query_params},
        "headers": dict(websocket.headers),
        "cookies": websocket.cookies,
        "url": str(websocket.url),
    }
    await websocket.accept()
    await websocket.send_json(facts)


@websocket("/json")
async def json_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_json(await websocket.receive_json())
    except WebSocketDisconnect:
        pass


APP = URLRouter(websocket_urlpatterns([typed, inspect_request, json_echo], fallback=True))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors() -> Any:
    handler = ErrorCounter()
    logging.getLogger("ravyn_channels").addHandler(handler)
    yield handler.records
    logging.getLogger("ravyn_channels").removeHandler(handler)


segment = st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s)


@FAST
@given(value=segment, f=segment, u=segment, s=segment, rest=st.text(min_size=1, max_size=30))
def test_random_path_segments_are_converted_or_refused(
    errors: list[Any], value: str, f: str, u: str, s: str, rest: str
) -> None:
    path = "/p/" + "/".join(quote(x, safe="") for x in (value, f, u, s)) + "/" + quote(rest, safe="/")

    async def run() -> str:
        seen.clear()
        try:
            async with connect(APP, path) as ws:
                await ws.wait_closed()
                return "accepted"
        except HandshakeRefused:
            return "refused"

    outcome = async_to_sync(run)()
    if outcome == "accepted":
        [(v, fl, _, ss, rr)] = seen
        assert isinstance(v, int) and isinstance(fl, float) and not math.isnan(fl) and ss == s and rr == rest
    assert errors == []


@FAST
@given(
    query=st.text(max_size=60),
    headers=st.lists(
        st.tuples(
            # Not "origin": a random Origin is refused by the origin policy (tests/test_security.py).
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(lambda n: n != "origin"),
            st.binary(max_size=40).map(lambda b: bytes(c for c in b if c not in (10, 13))),
        ),
        max_size=6,
    ),
)
def test_random_query_strings_and_headers_are_readable(
    errors: list[Any], query: str, headers: list[tuple[str, bytes]]
) -> None:
    async def run() -> dict[str, Any]:
        async with connect(APP, "/q?" + quote(query, safe="=&"), headers=headers) as ws:
            return dict(await ws.receive_json())

    facts = async_to_sync(run)()
    assert set(facts) == {"query", "headers", "cookies", "url"}
    assert errors == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@FAST
@given(payload=json_values)
def test_json_round_trips(errors: list[Any], payload: Any) -> None:
    async def run() -> Any:
        async with connect(APP, "/json") as ws:
            await ws.send_json(payload)
            return await ws.receive_json()

    assert async_to_sync(run)() == payload
    assert errors == []


@FAST
@given(text=st.text(max_size=40))
def test_random_text_is_json_or_closes_1007(errors: list[Any], text: str) -> None:
    try:
        expected: Any = json.loads(text)
        valid = True
    except ValueError:
        valid = False

    async def run() -> Any:
        async with connect(APP, "/json") as ws:
            await ws.send_text(text)
            try:
                return await ws.receive_json()
            except WebSocketDisconnect as exc:
                return exc.code

    outcome = async_to_sync(run)()
    if valid and not (isinstance(expected, float) and math.isnan(expected)):
        assert outcome == expected or (outcome != outcome)  # NaN never equals itself
    elif not valid:
        assert outcome == 1007
    assert errors == []


def test_property_suite_is_not_vacuous() -> None:
    """The routes above accept something: a known-good path is accepted and converted."""

    async def run() -> None:
        seen.clear()
        async with connect(APP, "/p/-3/2.5/12345678-1234-5678-1234-567812345678/a/b/c") as ws:
            await ws.wait_closed()

    async_to_sync(run)()
    assert seen[0][:2] == (-3, 2.5) and seen[0][3:] == ("a", "b/c")
    assert asyncio  # imported for async_to_sync users
