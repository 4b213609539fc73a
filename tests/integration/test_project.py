"""A Django project served by `daphne demo_project.asgi:application` (and runserver)."""

from __future__ import annotations

import asyncio
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import ROOT, StartServer, free_port

pytestmark = pytest.mark.integration

SETTINGS_SUFFIX = """
from demo_project.settings import *  # noqa
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": %r}}
LOGGING = {"version": 1, "disable_existing_loggers": True}
INSTALLED_APPS = [*INSTALLED_APPS, "e2e_app"]
"""

E2E_SOCKETS = """
from ravyn_channels import WebSocket, websocket


@websocket("/whoami")
async def whoami(websocket: WebSocket) -> None:
    await websocket.accept()
    user = websocket.user
    await websocket.send_text(user.username if user.is_authenticated else "anonymous")


@websocket("/boom")
async def boom(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    1 / 0
"""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    """The demo's settings with a private database and a LOGGING that silences existing loggers."""
    db = tmp_path / "db.sqlite3"
    (tmp_path / "e2e_settings.py").write_text(SETTINGS_SUFFIX % str(db))
    (tmp_path / "e2e_app").mkdir()
    (tmp_path / "e2e_app" / "__init__.py").write_text("")
    (tmp_path / "e2e_app" / "sockets.py").write_text(E2E_SOCKETS)
    return tmp_path, "e2e_settings"


def migrate(cwd: Path, settings: str) -> None:
    import subprocess

    from .conftest import server_env

    env = server_env(settings)
    env["PYTHONPATH"] = f"{cwd}:{env['PYTHONPATH']}"
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"], cwd=cwd, env=env, check=True
    )


def start_project(start_server: StartServer, project: tuple[Path, str], **kwargs: Any) -> Any:
    cwd, settings = project
    migrate(cwd, settings)
    return start_server(
        "demo_project.asgi:application", settings=settings, env={"PYTHONPATH": f"{cwd}:{ROOT}"}, **kwargs
    )


async def test_daphne_serves_http_and_websocket(
    start_server: StartServer, project: tuple[Path, str], ws_connect: Any
) -> None:
    server = start_project(start_server, project)
    def fetch() -> str:
        with urllib.request.urlopen(f"{server.http}/", timeout=5) as response:
            return str(response.read().decode())

    page = await asyncio.to_thread(fetch)
    assert "ravyn_channels" in page
    async with ws_connect(f"{server.ws}/ws/42", origin=f"http://127.0.0.1:{server.port}") as ws:
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), 5) == "Message from 42: hi"
    server.wait_for_log("Client 42 disconnected")


async def test_foreign_origin_is_refused_with_warning(
    start_server: StartServer, project: tuple[Path, str], ws_connect: Any
) -> None:
    server = start_project(start_server, project)
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(f"{server.ws}/ws/1", origin="http://evil.example"):
            pass
    assert info.value.response.status_code == 403
    log = server.wait_for_log("Origin 'http://evil.example' is not allowed")
    assert "WARNING" in log


async def test_missing_origin_is_allowed_by_default(
    start_server: StartServer, project: tuple[Path, str], ws_connect: Any
) -> None:
    server = start_project(start_server, project)
    async with ws_connect(f"{server.ws}/ws/2") as ws:  # websockets sends no Origin by default
        await ws.send("x")
        assert await asyncio.wait_for(ws.recv(), 5) == "Message from 2: x"


async def test_logged_in_user_reaches_handler(
    start_server: StartServer, project: tuple[Path, str], ws_connect: Any
) -> None:
    cwd, settings = project
    server = start_project(start_server, project)
    # Log in through Django's admin login form to get a real session cookie.
    import http.cookiejar
    import subprocess

    from .conftest import server_env

    env = server_env(settings)
    env["PYTHONPATH"] = f"{cwd}:{env['PYTHONPATH']}"
    await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "shell",
            "-c",
            "from django.contrib.auth.models import User; User.objects.create_superuser('ada', 'a@x.y', 'pw')",
        ],
        cwd=cwd,
        env=env,
        check=True,
    )
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def login() -> None:
        with opener.open(f"{server.http}/admin/login/", timeout=5) as response:
            response.read()
        token = next(c.value for c in jar if c.name == "csrftoken")
        data = f"username=ada&password=pw&csrfmiddlewaretoken={token}&next=/admin/".encode()
        req = urllib.request.Request(
            f"{server.http}/admin/login/", data=data, headers={"Referer": f"{server.http}/admin/login/"}
        )
        with opener.open(req, timeout=5) as response:
            response.read()

    await asyncio.to_thread(login)
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    assert "sessionid" in cookie
    async with ws_connect(f"{server.ws}/whoami", additional_headers={"Cookie": cookie}) as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "ada"
    async with ws_connect(f"{server.ws}/whoami") as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "anonymous"


async def test_handler_traceback_logged_despite_disable_existing_loggers(
    start_server: StartServer, project: tuple[Path, str], ws_connect: Any
) -> None:
    server = start_project(start_server, project)
    async with ws_connect(f"{server.ws}/boom") as ws:
        await ws.send("raise")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1011
    log = server.wait_for_log("ZeroDivisionError")
    assert log.count("Traceback") == 1


async def test_runserver_through_daphne(start_server: StartServer, project: tuple[Path, str], ws_connect: Any) -> None:
    cwd, settings = project
    migrate(cwd, settings)
    port = free_port()
    server = start_server(
        f"{ROOT / 'manage.py'} runserver 127.0.0.1:{port} --noreload",
        server="python",
        port=port,
        cwd=cwd,
        settings=settings,
        env={"PYTHONPATH": f"{cwd}:{ROOT}"},
    )
    async with ws_connect(f"{server.ws}/ws/9") as ws:
        await ws.send("rs")
        assert await asyncio.wait_for(ws.recv(), 5) == "Message from 9: rs"
