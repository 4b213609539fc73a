"""The live rooms admin page in headless Chromium, against two daphne processes on Redis:
a staff user sees every process's rooms and members and disconnects a member, then a room."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from .conftest import REDIS_URL, ROOT, Server, StartServer, server_env
from .test_browser import CHROMIUM, FLAGS, TIMEOUT_MS

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.redis]

SETTINGS = """
from demo_project.settings import *  # noqa
from ravyn_channels.layers import redis_channel_layer
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": %(db)r}}
CHANNEL_LAYERS = {"default": redis_channel_layer(%(url)r, prefix=%(prefix)r)}
INSTALLED_APPS = [*INSTALLED_APPS, "live_app"]
ROOT_URLCONF = "live_urls"
"""

URLS = """
from django.urls import include, path
from demo_project.urls import urlpatterns as demo

urlpatterns = [path("admin/live-rooms/", include("ravyn_channels.liveadmin")), *demo]
"""

SOCKETS = """
from ravyn_channels import ConnectionManager, WebSocket, WebSocketDisconnect, websocket

manager = ConnectionManager("tests.live")


@websocket("/live/{room}")
async def live(websocket: WebSocket, room: str) -> None:
    await manager.connect(websocket, group=room)
    await websocket.send_text(websocket.connection_id or "")
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect as exc:
        print(f"live: {websocket.connection_id} saw {exc.code} {exc.reason!r}", flush=True)
        manager.disconnect(websocket)
"""


@pytest.fixture
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        pytest.skip(f"playwright is not installed ({exc})")
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


def manage(cwd: Path, *args: str) -> None:
    env = server_env("live_settings")
    env["PYTHONPATH"] = f"{cwd}:{env['PYTHONPATH']}"
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=cwd, env=env, check=True, timeout=120)


@pytest.fixture
def cluster(redis_ready: None, tmp_path: Path, start_server: StartServer) -> tuple[Server, Server]:
    prefix = f"rc-test-{uuid.uuid4().hex[:8]}"
    (tmp_path / "live_settings.py").write_text(
        SETTINGS % {"db": str(tmp_path / "db.sqlite3"), "url": REDIS_URL, "prefix": prefix}
    )
    (tmp_path / "live_urls.py").write_text(URLS)
    (tmp_path / "live_app").mkdir()
    (tmp_path / "live_app" / "__init__.py").write_text("")
    (tmp_path / "live_app" / "sockets.py").write_text(SOCKETS)
    manage(tmp_path, "migrate", "--noinput", "-v0")
    manage(
        tmp_path, "shell", "-c",
        "from django.contrib.auth.models import User; User.objects.create_superuser('boss', 'b@x.y', 'pw'); "
        "User.objects.create_user('ada', password='pw')",
    )
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}"}
    return (
        start_server("demo_project.asgi:application", settings="live_settings", env=env),
        start_server("demo_project.asgi:application", settings="live_settings", env=env),
    )


def open_socket(stack: ExitStack, server: Server, room: str) -> tuple[Any, str]:
    from websockets.sync.client import connect

    ws = stack.enter_context(connect(f"{server.ws}/live/{room}", open_timeout=5, close_timeout=5))
    return ws, str(ws.recv(timeout=5))


def closed_with(ws: Any) -> tuple[int | None, str | None]:
    from websockets.exceptions import ConnectionClosed

    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(timeout=5)
    return ws.close_code, ws.close_reason


def log_in(page: Any, server: Server, username: str) -> None:
    page.goto(f"{server.http}/admin/login/?next=/admin/live-rooms/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")


def test_staff_see_every_processs_rooms_and_disconnect_members(
    cluster: tuple[Server, Server], chromium: Any
) -> None:
    from playwright.sync_api import expect

    a, b = cluster
    stack = ExitStack()
    lobby_a, _ = open_socket(stack, a, "lobby")
    lobby_b, lobby_b_id = open_socket(stack, b, "lobby")
    kitchen_b, _ = open_socket(stack, b, "kitchen")
    page = chromium.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    log_in(page, a, "boss")
    expect(page.locator("#summary")).to_have_text("2 rooms, 3 connections in the cluster.")
    lobby = page.locator(".module[data-room=lobby]")
    expect(lobby.locator(".room-count")).to_have_text("2")
    expect(page.locator(".module[data-room=kitchen] .room-count")).to_have_text("1")
    expect(lobby.locator(f"tr[data-connection='{lobby_b_id}']")).to_have_count(1)

    # Disconnect one member of process B from the page served by process A.
    lobby.locator(f"tr[data-connection='{lobby_b_id}'] button.disconnect-one").click()
    assert closed_with(lobby_b) == (1008, "disconnected by an administrator")
    expect(page.locator(".messagelist")).to_contain_text(f"Disconnected {lobby_b_id}")
    expect(page.locator(".module[data-room=lobby] .room-count")).to_have_text("1")
    b.wait_for_log(f"live: {lobby_b_id} saw 1008 'disconnected by an administrator'")

    # Disconnect a whole room.
    page.locator(".module[data-room=kitchen] button.disconnect-room").click()
    assert closed_with(kitchen_b) == (1008, "disconnected by an administrator")
    expect(page.locator(".messagelist")).to_contain_text("Disconnected everyone in kitchen")
    expect(page.locator("#summary")).to_have_text("1 room, 1 connection in the cluster.")
    lobby_a.send("still here")
    stack.close()


def test_the_page_is_for_staff_only(cluster: tuple[Server, Server], chromium: Any) -> None:
    from playwright.sync_api import expect

    a, _ = cluster
    page = chromium.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{a.http}/admin/live-rooms/")
    expect(page).to_have_url(f"{a.http}/admin/login/?next=/admin/live-rooms/")
    log_in(page, a, "ada")  # a user, not staff: the admin login refuses them
    expect(page.locator(".errornote")).to_be_visible()
    assert "/admin/login/" in page.url
