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
    namespace: dict[str, Any] = {"__name__": "ported_handlers"}
    exec(HANDLERS.format(imports=imports), namespace)
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
