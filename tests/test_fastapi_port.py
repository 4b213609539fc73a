"""A handler module written for FastAPI runs on ravyn_channels with only its import line changed.

The module below (typed path and query parameters, a cookie, a dependency that
refuses with ``WebSocketException``) is text: it is run once with FastAPI's
imports (when FastAPI is installed, under FastAPI's own test client) and once
with ours. Registration is one line outside the module in each framework:
``app.add_api_websocket_route(path, item_socket)`` there, ``websocket(path)(item_socket)`` here.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytest

from ravyn_channels import websocket
from ravyn_channels.testing import HandshakeRefused, connect

pytestmark = pytest.mark.django_db

HANDLERS = '''\
{imports}
from typing import Annotated


async def get_token(
    websocket: WebSocket,
    session: Annotated[str | None, Cookie()] = None,
    token: Annotated[str | None, Query()] = None,
) -> str:
    if session is None and token is None:
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION)
    return session or token


async def item_socket(
    websocket: WebSocket,
    item_id: int,
    token: Annotated[str, Depends(get_token)],
    q: int | None = None,
    limit: int = Query(10),
) -> None:
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_json({{"item": item_id, "token": token, "q": q, "limit": limit, "data": data}})
    except WebSocketDisconnect:
        pass
'''

FASTAPI_IMPORTS = (
    "from fastapi import Cookie, Depends, Query, WebSocket, WebSocketDisconnect, WebSocketException, status"
)
OUR_IMPORTS = (
    "from ravyn_channels import Cookie, Inject as Depends, Query, WebSocket, WebSocketDisconnect, "
    "WebSocketException, status"
)

PATH = "/items/{item_id}/ws"
EXPECTED = {"item": 5, "token": "abc", "q": 3, "limit": 10, "data": "hi"}


def load(imports: str) -> dict[str, Any]:
    return load_text(HANDLERS, imports)


def load_text(text: str, imports: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "ported_handlers"}
    exec(text.format(imports=imports), namespace)
    return namespace


def test_the_module_differs_only_in_its_import_line() -> None:
    ours = HANDLERS.format(imports=OUR_IMPORTS).splitlines()
    theirs = HANDLERS.format(imports=FASTAPI_IMPORTS).splitlines()
    assert [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b] == [0]


async def test_runs_on_ravyn_channels(rc_logs: pytest.LogCaptureFixture) -> None:
    route = websocket(PATH)(load(OUR_IMPORTS)["item_socket"])
    async with connect(route, "/items/5/ws?token=abc&q=3") as ws:
        await ws.send_text("hi")
        assert await ws.receive_json() == EXPECTED
    async with connect(route, "/items/6/ws?limit=2", headers={"cookie": "session=s1"}) as ws:
        await ws.send_text("yo")
        assert await ws.receive_json() == {"item": 6, "token": "s1", "q": None, "limit": 2, "data": "yo"}
    for path in ("/items/5/ws", "/items/five/ws?token=abc"):
        with pytest.raises(HandshakeRefused):
            async with connect(route, path):
                pass
    refused = [r for r in rc_logs.records if r.getMessage().startswith("Refused websocket /items/")]
    assert [r.levelno for r in refused] == [logging.INFO, logging.INFO]
    assert "parameter 'token': ported_handlers.get_token refused (WebSocketException(code=1008))" in (
        refused[0].getMessage()
    )
    assert "parameter 'item_id': 'five' is not an integer" in refused[1].getMessage()


def test_runs_on_fastapi() -> None:
    fastapi = pytest.importorskip("fastapi")
    with warnings.catch_warnings():  # starlette's test client warns about its own httpx dependency
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect as StarletteDisconnect

    app = fastapi.FastAPI()
    app.add_api_websocket_route(PATH, load(FASTAPI_IMPORTS)["item_socket"])
    client = TestClient(app)
    with client.websocket_connect("/items/5/ws?token=abc&q=3") as ws:
        ws.send_text("hi")
        assert ws.receive_json() == EXPECTED
    with pytest.raises(StarletteDisconnect) as info:
        with client.websocket_connect("/items/5/ws"):
            pass
    assert info.value.code == 1008


# -- A second module: what FastAPI and Starlette code reads from the socket (issue 13) ----------

FACTS = '''\
{imports}

CLOSED = []


def doubled(query_param: int) -> int:
    return query_param * 2


async def facts(websocket: WebSocket, room: str, q: str, twice: int = Depends(doubled)) -> None:
    await websocket.accept(subprotocol=websocket["subprotocols"][-1])
    await websocket.send_json(
        {{
            "room": room,
            "q": q,
            "twice": twice,
            "params": dict(websocket.query_params),
            "all_b": websocket.query_params.getlist("b"),
            "route": websocket.scope["route"].path,
            "url": str(websocket.url),
            "error": str(WebSocketException(status.WS_1008_POLICY_VIOLATION, "Policy Violation")),
        }}
    )
    try:
        await websocket.receive_text()
    except WebSocketDisconnect as exc:
        CLOSED.append((exc.code, exc.reason))
'''

FACTS_PATH = "/facts/{room}"
FACTS_URL = "/facts/lobby?q=hi&query_param=21&b=1&b=2"
FACTS_EXPECTED = {
    "room": "lobby",
    "q": "hi",
    "twice": 42,
    "params": {"q": "hi", "query_param": "21", "b": "2"},
    "all_b": ["1", "2"],
    "route": "/facts/{room}",
    "url": "ws://testserver/facts/lobby?q=hi&query_param=21&b=1&b=2",
    "error": "1008: Policy Violation",
}


def test_the_facts_module_differs_only_in_its_import_line() -> None:
    ours = FACTS.format(imports=OUR_IMPORTS).splitlines()
    theirs = FACTS.format(imports=FASTAPI_IMPORTS).splitlines()
    assert [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b] == [0]


async def test_facts_on_ravyn_channels() -> None:
    from ravyn_channels import WebSocketDisconnect

    module = load_text(FACTS, OUR_IMPORTS)
    route = websocket(FACTS_PATH)(module["facts"])
    async with connect(route, FACTS_URL, subprotocols=["a", "b"]) as ws:
        assert ws.subprotocol == "b"
        assert await ws.receive_json() == FACTS_EXPECTED
        await ws.close(1001, "bye")
    assert module["CLOSED"] == [(1001, "bye")]
    # a plain parameter missing, in the handler, then in the dependency
    for path in ("/facts/lobby?query_param=21", "/facts/lobby?q=hi"):
        with pytest.raises(WebSocketDisconnect) as info:
            async with connect(route, path):
                pass
        assert info.value.code == 1008


def test_facts_on_fastapi() -> None:
    fastapi = pytest.importorskip("fastapi")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect as StarletteDisconnect

    module = load_text(FACTS, FASTAPI_IMPORTS)
    app = fastapi.FastAPI()
    app.add_api_websocket_route(FACTS_PATH, module["facts"])
    client = TestClient(app)
    with client.websocket_connect(FACTS_URL, subprotocols=["a", "b"]) as ws:
        assert ws.accepted_subprotocol == "b"
        assert ws.receive_json() == FACTS_EXPECTED
        ws.close(1001, "bye")
    assert module["CLOSED"] == [(1001, "bye")]
    for path in ("/facts/lobby?query_param=21", "/facts/lobby?q=hi"):
        with pytest.raises(StarletteDisconnect) as info:
            with client.websocket_connect(path):
                pass
        assert info.value.code == 1008
