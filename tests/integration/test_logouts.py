"""A login that ends closes its sockets on every process: Django's real login, logout, password
change (admin forms over HTTP, a real session cookie) and deactivation, two daphne processes on Redis."""

from __future__ import annotations

import asyncio
import http.cookiejar
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from .conftest import REDIS_URL, ROOT, StartServer, server_env

pytestmark = [pytest.mark.integration, pytest.mark.redis]

SETTINGS = """
from demo_project.settings import *  # noqa
from ravyn_channels.layers import redis_channel_layer
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": %(db)r}}
CHANNEL_LAYERS = {"default": redis_channel_layer(%(url)r, prefix=%(prefix)r)}
INSTALLED_APPS = [*INSTALLED_APPS, "logout_app"]
"""

SOCKETS = """
from ravyn_channels import WebSocket, WebSocketDisconnect, websocket


@websocket("/me")
async def me(websocket: WebSocket) -> None:
    await websocket.accept()
    user = websocket.user
    await websocket.send_text(user.username if user.is_authenticated else "anonymous")
    try:
        while True:
            await websocket.send_text("pong " + await websocket.receive_text())
    except WebSocketDisconnect as exc:
        print(f"me: handler saw {exc.code} {exc.reason!r}", flush=True)
"""


class Browser:
    """One browser: its own cookie jar, Django's real login form, logout and password change views."""

    def __init__(self, base: str):
        self.http = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _csrf(self) -> str:
        return next(c.value for c in self.jar if c.name == "csrftoken")

    def post_form(self, path: str, fields: dict[str, str]) -> str:
        with self.opener.open(f"{self.http}{path}", timeout=10) as response:
            response.read()
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": self._csrf()}).encode()
        request = urllib.request.Request(f"{self.http}{path}", data=data, headers={"Referer": f"{self.http}{path}"})
        with self.opener.open(request, timeout=10) as response:
            return str(response.geturl())

    def login(self, username: str, password: str) -> None:
        self.post_form("/admin/login/?next=/admin/", {"username": username, "password": password})
        assert any(c.name == "sessionid" for c in self.jar), "login failed"

    def logout(self) -> None:
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": self._csrf()}).encode()
        request = urllib.request.Request(f"{self.http}/logout/", data=data, headers={"Referer": f"{self.http}/"})
        with self.opener.open(request, timeout=10) as response:
            response.read()

    def change_password(self, old: str, new: str) -> None:
        fields = {"old_password": old, "new_password1": new, "new_password2": new}
        assert self.post_form("/admin/password_change/", fields).endswith("/admin/password_change/done/")

    @property
    def cookie(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{c.name}={c.value}" for c in self.jar)}


@pytest.fixture
def cluster(redis_ready: None, tmp_path: Path, start_server: StartServer) -> tuple[Any, Any, Path]:
    prefix = f"rc-test-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "db.sqlite3"
    (tmp_path / "logout_settings.py").write_text(SETTINGS % {"db": str(db), "url": REDIS_URL, "prefix": prefix})
    (tmp_path / "logout_app").mkdir()
    (tmp_path / "logout_app" / "__init__.py").write_text("")
    (tmp_path / "logout_app" / "sockets.py").write_text(SOCKETS)
    manage("migrate --noinput -v0", tmp_path)
    manage("shell -c \"from django.contrib.auth.models import User; "
           "[User.objects.create_superuser(n, n + '@x.y', 'pw') for n in ('ada', 'bob')]\"", tmp_path)
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}"}
    a = start_server("demo_project.asgi:application", settings="logout_settings", env=env)
    b = start_server("demo_project.asgi:application", settings="logout_settings", env=env)
    return a, b, tmp_path


def manage(command: str, cwd: Path) -> None:
    env = server_env("logout_settings")
    env["PYTHONPATH"] = f"{cwd}:{env['PYTHONPATH']}"
    subprocess.run(f"{sys.executable} {ROOT / 'manage.py'} {command}", shell=True, cwd=cwd, env=env, check=True,
                   timeout=60)


async def open_me(ws_connect: Any, server: Any, browser: Browser, expect: str) -> Any:
    ws = await ws_connect(f"{server.ws}/me", additional_headers=browser.cookie)
    assert await asyncio.wait_for(ws.recv(), 5) == expect
    return ws


async def closed_with(ws: Any, timeout: float = 5.0) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    return ws.close_code, ws.close_reason


async def still_open(ws: Any) -> bool:
    await ws.send("x")
    return str(await asyncio.wait_for(ws.recv(), 5)) == "pong x"


async def test_logout_closes_that_sessions_sockets_on_both_processes(
    cluster: tuple[Any, Any, Path], ws_connect: Any
) -> None:
    a, b, _ = cluster
    laptop, phone, other = Browser(a.http), Browser(a.http), Browser(b.http)
    for browser, name in ((laptop, "ada"), (phone, "ada"), (other, "bob")):
        await asyncio.to_thread(browser.login, name, "pw")
    on_a = await open_me(ws_connect, a, laptop, "ada")
    on_b = await open_me(ws_connect, b, laptop, "ada")
    phone_b = await open_me(ws_connect, b, phone, "ada")
    bob_b = await open_me(ws_connect, b, other, "bob")
    await asyncio.sleep(0.3)
    started = asyncio.get_running_loop().time()
    await asyncio.to_thread(laptop.logout)  # Django's LogoutView on process A
    assert await closed_with(on_a) == (1008, "logged out")
    assert await closed_with(on_b) == (1008, "logged out")
    elapsed = asyncio.get_running_loop().time() - started
    assert elapsed < 5, elapsed  # generous: layer delivery is milliseconds
    assert await still_open(phone_b) and await still_open(bob_b)
    b.wait_for_log("me: handler saw 1008 'logged out'")
    for ws in (phone_b, bob_b):
        await ws.close()


async def test_password_change_and_deactivation_close_sockets_on_both_processes(
    cluster: tuple[Any, Any, Path], ws_connect: Any
) -> None:
    a, b, cwd = cluster
    laptop, phone, other = Browser(a.http), Browser(b.http), Browser(b.http)
    for browser, name in ((laptop, "ada"), (phone, "ada"), (other, "bob")):
        await asyncio.to_thread(browser.login, name, "pw")
    ada_a = await open_me(ws_connect, a, laptop, "ada")
    ada_b = await open_me(ws_connect, b, phone, "ada")
    bob_b = await open_me(ws_connect, b, other, "bob")
    await asyncio.sleep(0.3)
    # Django's admin password change form, on process A: every socket opened before closes.
    await asyncio.to_thread(laptop.change_password, "pw", "a new secret 123")
    assert await closed_with(ada_a) == (1008, "password changed")
    assert await closed_with(ada_b) == (1008, "password changed")
    assert await still_open(bob_b)
    # The browser that changed it stays logged in (Django updated its session) and reconnects;
    # the other session was logged out by Django.
    ada_again = await open_me(ws_connect, b, laptop, "ada")
    stale = await open_me(ws_connect, a, phone, "anonymous")
    await stale.close()
    # Deactivation from another process (a shell): every socket of the user closes.
    await asyncio.to_thread(
        manage,
        "shell -c \"from django.contrib.auth.models import User; u = User.objects.get(username='ada'); "
        "u.is_active = False; u.save()\"",
        cwd,
    )
    assert await closed_with(ada_again) == (1008, "account deactivated")
    assert await still_open(bob_b)
    await bob_b.close()
