"""The seed's first program, verbatim but for its import line, under a real daphne."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from .conftest import StartServer

pytestmark = pytest.mark.integration

SEED = """\
from ravyn_channels import Ravyn, websocket, WebSocket, WebSocketDisconnect

@websocket("/ws/{client_id}")
async def chat_socket(websocket: WebSocket, client_id: str) -> None:
    # 1. Accept the connection
    await websocket.accept()
    try:
        # 2. Communication loop
        while True:
            # Wait for data from client
            data = await websocket.receive_text()
            # Send data back to client
            await websocket.send_text(f"Message from {client_id}: {data}")
    except WebSocketDisconnect:
        # 3. Handle disconnection
        print(f"Client {client_id} disconnected")

app = Ravyn(routes=[chat_socket])
"""


def write_app(tmp_path: Path, source: str, name: str = "echo") -> Path:
    (tmp_path / f"{name}.py").write_text(source)
    return tmp_path


async def echo_once(ws_connect: Any, url: str, text: str = "hi") -> str:
    async with ws_connect(url) as ws:
        await ws.send(text)
        return str(await asyncio.wait_for(ws.recv(), 5))


async def test_seed_program_runs_unchanged(tmp_path: Path, start_server: StartServer, ws_connect: Any) -> None:
    server = start_server("echo:app", cwd=write_app(tmp_path, SEED))
    assert await echo_once(ws_connect, f"{server.ws}/ws/42") == "Message from 42: hi"
    server.wait_for_log("Client 42 disconnected")


@pytest.mark.parametrize(
    "signature",
    [
        "socket: WebSocket, client_id: str",
        "ws: WebSocket, client_id: str",
        "conn: WebSocket, client_id: str",
        "socket, client_id",
    ],
)
async def test_websocket_parameter_names(
    signature: str, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    name = signature.split(":")[0].split(",")[0]
    source = SEED.replace("websocket: WebSocket, client_id: str", signature).replace(
        "await websocket.", f"await {name}."
    )
    server = start_server("echo:app", cwd=write_app(tmp_path, source))
    assert await echo_once(ws_connect, f"{server.ws}/ws/7", "yo") == "Message from 7: yo"
    server.wait_for_log("Client 7 disconnected")


async def test_standalone_refuses_unknown_path_with_403(
    tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    server = start_server("echo:app", cwd=write_app(tmp_path, SEED))
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(f"{server.ws}/nowhere"):
            pass
    assert info.value.response.status_code == 403
    log = server.wait_for_log("no route matches")
    assert "Traceback" not in log


async def test_standalone_http_gets_404(tmp_path: Path, start_server: StartServer) -> None:
    import urllib.error
    import urllib.request

    server = start_server("echo:app", cwd=write_app(tmp_path, SEED))
    with pytest.raises(urllib.error.HTTPError) as info:
        await asyncio.to_thread(urllib.request.urlopen, f"{server.http}/", None, 5)
    info.value.close()
    assert info.value.code == 404


async def test_standalone_with_settings_module_uses_project_settings(
    tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    (tmp_path / "mysettings.py").write_text(
        "SECRET_KEY = 'x'\nALLOWED_HOSTS = ['only.example']\n"
        "INSTALLED_APPS = ['django.contrib.contenttypes', 'django.contrib.auth', 'channels', 'ravyn_channels']\n"
        "DATABASES = {}\nCHANNEL_LAYERS = {'default': {'BACKEND': 'channels.layers.InMemoryChannelLayer'}}\n"
        "ROOT_URLCONF = 'ravyn_channels.standalone'\n"
    )
    server = start_server("echo:app", cwd=write_app(tmp_path, SEED), settings="mysettings")
    # The project's ALLOWED_HOSTS now decide: a localhost Origin is refused, only.example is allowed.
    with pytest.raises(InvalidStatus):
        async with ws_connect(f"{server.ws}/ws/1", origin="http://localhost"):
            pass
    async with ws_connect(f"{server.ws}/ws/1", origin="http://only.example") as ws:
        await ws.send("ok")
        assert await ws.recv() == "Message from 1: ok"
