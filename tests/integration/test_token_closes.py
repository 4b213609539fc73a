"""A token that ends closes its sockets: revocation on one daphne process closes the user's token
sockets on another (Redis), and a token's expiry closes the socket it opened.

The servers run ``tests.integration.apps.tokens`` (Django's real login, sessions, SQLite file)
with settings written per test: channels-redis on 127.0.0.1:6379 and ``RAVYN_CHANNELS`` overrides.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from django.core import signing

from .conftest import REDIS_URL, ROOT, Server, StartServer, server_env
from .test_tokens import APP, Browser, open_feed, refused

pytestmark = [pytest.mark.integration, pytest.mark.redis]

SETTINGS = """
from tests.integration.apps.tokens_settings import *  # noqa: F403
from ravyn_channels.layers import redis_channel_layer
CHANNEL_LAYERS = {"default": redis_channel_layer(%(url)r, prefix=%(prefix)r)}
RAVYN_CHANNELS = {"AUTODISCOVER": [], **%(ravyn)r}
"""

#: Revocation on A -> close seen on B, the HTTP request included: measured 44-75 ms (4 runs, shared
#: 2-core machine, printed with -s); the bound is 4 times the slowest.
REVOKE_BOUND = 0.3
#: Close seen after the token's expiry (the timer fires at the expiry): measured 1.8-6.7 ms (4 runs).
EXPIRY_LATENESS_BOUND = 0.05

Pair = Callable[..., tuple[Server, ...]]


@pytest.fixture
def servers(redis_ready: None, tmp_path: Path, start_server: StartServer) -> Pair:
    """``servers(n, **RAVYN_CHANNELS)``: n daphne processes of one project (one database, one Redis prefix)."""

    def start(count: int = 2, **ravyn: Any) -> tuple[Server, ...]:
        values = {"url": REDIS_URL, "prefix": f"rc-test-{uuid.uuid4().hex[:8]}", "ravyn": ravyn}
        (tmp_path / "token_close_settings.py").write_text(SETTINGS % values)
        manage(tmp_path, "migrate", "--noinput", "-v0")
        shell(tmp_path, "[User.objects.create_user(n, password='pw') for n in ('ada', 'bob')]")
        return tuple(start_server(APP, settings="token_close_settings", env=_env(tmp_path)) for _ in range(count))

    return start


def _env(tmp_path: Path) -> dict[str, str]:
    return {"TOKENS_DB": str(tmp_path / "tokens.sqlite3"), "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}


def manage(tmp_path: Path, *args: str) -> None:
    """``manage.py`` of the project the servers run, in a process of its own."""
    run_env = server_env("token_close_settings", **_env(tmp_path))
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=run_env, check=True, timeout=120)


def shell(tmp_path: Path, code: str) -> None:
    manage(tmp_path, "shell", "-c", f"from django.contrib.auth.models import User; {code}")


async def closed_with(ws: Any, timeout: float = 10.0) -> tuple[int | None, str | None, float]:
    """Wait for the server's close; the code, reason and the wall-clock time it arrived."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as exc:
        seen = time.time()
        return (exc.rcvd.code, exc.rcvd.reason, seen) if exc.rcvd else (None, None, seen)


async def echoes(ws: Any, name: str) -> bool:
    await ws.send("still?")
    return bool(await asyncio.wait_for(ws.recv(), 5) == f"{name}: still?")


async def open_me(server: Server, browser: Browser, name: str) -> Any:
    ws = await websockets.connect(f"{server.ws}/me", additional_headers=browser.cookie, open_timeout=10)
    assert await echoes(ws, name)
    return ws


async def test_revoking_on_one_process_closes_the_users_token_sockets_on_every_process(
    servers: Pair, tmp_path: Path
) -> None:
    a, b = servers(2)
    ada, bob = Browser(a), Browser(b)
    token = await asyncio.to_thread(ada.post, "/login/", username="ada", password="pw")
    bob_token = await asyncio.to_thread(bob.post, "/login/", username="bob", password="pw")
    ada_on_b = await open_feed(b, token)
    ada_on_a = await open_feed(a, await asyncio.to_thread(ada.get, "/token/"))
    ada_session_on_b = await open_me(b, ada, "ada")  # the same user, authenticated by the session cookie
    bob_on_b = await open_feed(b, bob_token, "bob")
    started = time.time()
    assert await asyncio.to_thread(ada.post, "/revoke/") == "revoked"  # revoke_tokens(user) in a view on A
    code, reason, seen = await closed_with(ada_on_b)
    assert (code, reason) == (1008, "token revoked")
    print(f"revoke on A -> close on B: {seen - started:.3f} s")
    assert seen - started < REVOKE_BOUND
    assert (await closed_with(ada_on_a))[:2] == (1008, "token revoked")
    # Only token sockets of that user: her session socket and bob's token socket stay open.
    assert await echoes(ada_session_on_b, "ada") and await echoes(bob_on_b, "bob")
    assert await refused(b, token)
    b.wait_for_log("feed of ada ended: 1008")  # the handler on B saw the close and returned
    # From a process that serves no sockets (a management command, a worker): the same.
    await asyncio.to_thread(
        shell,
        tmp_path,
        "from ravyn_channels.auth import revoke_tokens; revoke_tokens(User.objects.get(username='bob'))",
    )
    assert (await closed_with(bob_on_b))[:2] == (1008, "token revoked")
    assert await echoes(ada_session_on_b, "ada")
    await ada_session_on_b.close()


async def test_logout_on_one_process_closes_token_sockets_on_another(servers: Pair) -> None:
    a, b = servers(2)
    ada, phone = Browser(a), Browser(b)
    await asyncio.to_thread(ada.post, "/login/", username="ada", password="pw")
    phone_token = await asyncio.to_thread(phone.post, "/login/", username="ada", password="pw")
    on_b = await open_feed(b, phone_token)
    await asyncio.to_thread(ada.post, "/logout/")  # on A: TOKEN_REVOKE_ON_LOGOUT revokes every token of ada
    assert (await closed_with(on_b))[:2] == (1008, "token revoked")


def _expires_at(token: str, max_age: float) -> float:
    """A token's expiry: its signing time (whole seconds, the field before the signature) plus max_age."""
    return signing.b62_decode(token.rsplit(".", 2)[-2]) + max_age


MAX_AGE = 3


async def test_an_expired_token_closes_its_socket_at_expiry(servers: Pair) -> None:
    (server,) = servers(1, TOKEN_MAX_AGE=MAX_AGE)
    ada = Browser(server)
    token = await asyncio.to_thread(ada.post, "/login/", username="ada", password="pw")
    ws = await open_feed(server, token)
    session_ws = await open_me(server, ada, "ada")
    code, reason, seen = await closed_with(ws)
    assert (code, reason) == (1008, "token expired")
    late = seen - _expires_at(token, MAX_AGE)
    print(f"closed {late * 1000:.1f} ms after the token's expiry")
    assert 0 <= late < EXPIRY_LATENESS_BOUND
    server.wait_for_log("feed of ada ended: 1008")
    assert await echoes(session_ws, "ada")  # no token, no expiry
    # A fresh token of the same session opens a new socket.
    fresh = await open_feed(server, await asyncio.to_thread(ada.get, "/token/"))
    await fresh.close()
    await session_ws.close()


async def test_opting_out_keeps_token_sockets_open(servers: Pair) -> None:
    (server,) = servers(1, TOKEN_MAX_AGE=MAX_AGE, CLOSE_ON_TOKEN_EXPIRY=False, CLOSE_ON_TOKEN_REVOKE=False)
    ada = Browser(server)
    token = await asyncio.to_thread(ada.post, "/login/", username="ada", password="pw")
    ws = await open_feed(server, token)
    # The view and the socket share this process: a close would have been sent before the response.
    assert await asyncio.to_thread(ada.post, "/revoke/") == "revoked"
    assert await refused(server, token)  # revoked for new handshakes all the same
    wait = _expires_at(token, MAX_AGE) + 0.5 - time.time()
    await asyncio.sleep(max(0.0, wait))  # past the expiry: time itself is what this test waits for
    assert await echoes(ws, "ada")
    await ws.close()
