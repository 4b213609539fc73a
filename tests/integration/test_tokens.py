"""Tokens on a real daphne: password change, logout and revocation against Django's real auth.

The server is ``tests.integration.apps.tokens`` (sessions, auth, SQLite file): a
client logs in over HTTP (session cookie), gets a token from ``issue_token``, and
opens ``/feed`` with ``["bearer", token]``.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets

from .conftest import ROOT, Server, StartServer, server_env

pytestmark = pytest.mark.integration

APP = "tests.integration.apps.tokens:application"
SETTINGS = "tests.integration.apps.tokens_settings"


@pytest.fixture
def server(tmp_path: Path, start_server: StartServer) -> Server:
    env = {"TOKENS_DB": str(tmp_path / "tokens.sqlite3")}
    run_env = server_env(SETTINGS, **env)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=run_env, check=True, timeout=120)
    create = "from django.contrib.auth.models import User; User.objects.create_user('ada', password='pw')"
    subprocess.run([*manage, "shell", "-c", create], cwd=ROOT, env=run_env, check=True, timeout=60)
    return start_server(APP, settings=SETTINGS, env=env)


class Browser:
    """An HTTP client with its own cookie jar (one person's session)."""

    def __init__(self, server: Server):
        self.server = server
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def post(self, path: str, **form: str) -> str:
        data = urllib.parse.urlencode(form).encode()
        with self.opener.open(f"{self.server.http}{path}", data=data, timeout=10) as response:
            return str(response.read().decode())

    @property
    def cookie(self) -> dict[str, str]:
        """The session cookie, for a websocket handshake of this browser."""
        jar = next(h for h in self.opener.handlers if isinstance(h, urllib.request.HTTPCookieProcessor)).cookiejar
        return {"Cookie": "; ".join(f"{c.name}={c.value}" for c in jar)}

    def get(self, path: str) -> str:
        with self.opener.open(f"{self.server.http}{path}", timeout=10) as response:
            return str(response.read().decode())


async def open_feed(server: Server, token: str, name: str = "ada") -> Any:
    ws = await websockets.connect(f"{server.ws}/feed", subprotocols=["bearer", token], open_timeout=10)  # type: ignore[list-item]
    assert ws.subprotocol == "bearer"
    await ws.send("hi")
    assert await asyncio.wait_for(ws.recv(), 10) == f"{name}: hi"
    return ws


async def refused(server: Server, token: str) -> bool:
    try:
        async with websockets.connect(f"{server.ws}/feed", subprotocols=["bearer", token], open_timeout=10):  # type: ignore[list-item]
            return False
    except websockets.InvalidStatus as exc:
        return bool(exc.response.status_code == 403)


async def closed_with(ws: Any) -> tuple[int | None, str | None]:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed as exc:
        return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, None)


async def test_password_change_refuses_the_token_and_closes_its_connection(server: Server) -> None:
    ada = Browser(server)
    token = ada.post("/login/", username="ada", password="pw")
    ws = await open_feed(server, token)
    assert ada.post("/password/", password="new-pw") == "changed"
    assert await closed_with(ws) == (1008, "token revoked")
    assert await refused(server, token)
    server.wait_for_log("feed of ada ended: 1008")  # the handler ran to its end
    fresh = ada.get("/token/")  # the session lives on (update_session_auth_hash): new tokens work
    await (await open_feed(server, fresh)).close()


async def test_logout_revokes_tokens_and_closes_their_connections(server: Server) -> None:
    ada, ada_phone = Browser(server), Browser(server)
    token = ada.post("/login/", username="ada", password="pw")
    phone_token = ada_phone.post("/login/", username="ada", password="pw")
    ws, phone = await open_feed(server, token), await open_feed(server, phone_token)
    ada.post("/logout/")
    # The documented model: logging out revokes every token of the user (all devices).
    assert await closed_with(ws) == (1008, "token revoked")
    assert await closed_with(phone) == (1008, "token revoked")
    assert await refused(server, token)
    assert await refused(server, phone_token)
    again = Browser(server).post("/login/", username="ada", password="pw")
    await (await open_feed(server, again)).close()  # a new login gets a working token
    server.wait_for_log("feed of ada ended: 1008")
