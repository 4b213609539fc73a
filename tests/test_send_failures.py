"""A server whose send fails (uvicorn's ClientDisconnected once the TCP connection is gone), in process.

The application runs behind a wrapper that makes the server's ``send`` raise
uvicorn's own ``ClientDisconnected`` from a chosen moment, as uvicorn does
after a client reset; the end-to-end version is in tests/integration/test_server_parity.py.
"""

import asyncio
import logging
from typing import Any

import pytest

from ravyn_channels import WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.asgi import websocket_application
from ravyn_channels.testing import connect

pytestmark = pytest.mark.django_db

ClientDisconnected: Any = pytest.importorskip("uvicorn.protocols.utils").ClientDisconnected


def dying_server(route: Any, dead: asyncio.Event) -> Any:
    app = websocket_application([route])

    async def server(scope: Any, receive: Any, send: Any) -> None:
        async def send_or_fail(message: Any) -> None:
            if dead.is_set():
                raise ClientDisconnected()
            await send(message)

        await app(scope, receive, send_or_fail)

    return server


async def test_failed_send_is_websocket_disconnect_1006(rc_logs: pytest.LogCaptureFixture) -> None:
    dead = asyncio.Event()
    seen: list[Any] = []

    @websocket("/flood")
    async def flood(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("ready")
        await dead.wait()
        for send in (websocket.send_text("x"), websocket.send_bytes(b"x"), websocket.send_json({})):
            try:
                await send
            except WebSocketDisconnect as exc:
                seen.append((exc.code, websocket.close_code))
        seen.append(websocket)

    async with connect(dying_server(flood, dead), "/flood") as ws:
        assert await ws.receive_text() == "ready"
        dead.set()
        await asyncio.sleep(0.05)
    assert seen[:3] == [(1006, 1006)] * 3
    task = seen[3].consumer._task
    assert task.done() and task.exception() is None
    assert not [r for r in rc_logs.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("how", ["return", "raise"])
async def test_close_on_a_dead_transport_never_raises(rc_logs: pytest.LogCaptureFixture, how: str) -> None:
    dead = asyncio.Event()
    seen: list[WebSocket] = []

    @websocket("/quiet")
    async def quiet(websocket: WebSocket) -> None:
        seen.append(websocket)
        await websocket.accept()
        await websocket.send_text("ready")
        await dead.wait()
        if how == "raise":
            raise RuntimeError("handler bug on purpose")
        # returning: the consumer closes with 1000 through the dead transport

    async with connect(dying_server(quiet, dead), "/quiet") as ws:
        assert await ws.receive_text() == "ready"
        dead.set()
        await asyncio.sleep(0.05)
    task = seen[0].consumer._task
    assert task.done() and task.exception() is None
    errors = [r.getMessage() for r in rc_logs.records if r.levelno >= logging.WARNING]
    if how == "raise":  # the handler's own bug is reported, once; the failed close is not an error
        assert len(errors) == 1 and errors[0].endswith("quiet raised; closing with 1011")
    else:
        assert errors == []


async def test_failed_send_reports_the_close_the_server_already_queued() -> None:
    """The client's close frame and the failed send race: the handler sees the client's code."""
    dead = asyncio.Event()
    seen: list[tuple[int, str]] = []

    @websocket("/race")
    async def race(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("ready")
        await dead.wait()
        try:
            await websocket.send_text("too late")
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))

    async with connect(dying_server(race, dead), "/race") as ws:
        assert await ws.receive_text() == "ready"
        dead.set()  # the handler runs first and its send fails ...
        await ws.send({"type": "websocket.disconnect", "code": 4000, "reason": "bye"})  # ... then this is read
        await asyncio.sleep(0.05)
    assert seen == [(4000, "bye")]
