"""Parameters, dependencies, permissions, tokens, checks and commands seen from a real client.

A Django project (the demo's settings + one app) is served by daphne (and uvicorn
for the refusals); a ``websockets`` client sees HTTP 403 for each refusal before
accept and close 1008 after, and the server's log has one INFO line for each.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import REDIS_URL, ROOT, Server, StartServer, require_redis, server_env

pytestmark = pytest.mark.integration


SETTINGS = '''
import os
from demo_project.settings import *  # noqa
DEBUG = True
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": %(db)r}}
INSTALLED_APPS = [*INSTALLED_APPS, "guard_app"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"lvl": {"format": "%%(levelname)s %%(name)s %%(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "lvl"}},
    "loggers": {"ravyn_channels": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
if os.environ.get("GUARD_REDIS_PREFIX"):
    from ravyn_channels.layers import redis_channel_layer
    CHANNEL_LAYERS = {"default": redis_channel_layer(%(redis)r, prefix=os.environ["GUARD_REDIS_PREFIX"])}
'''

DUPLICATE_SETTINGS = '''
from guard_settings import *  # noqa
INSTALLED_APPS = [*INSTALLED_APPS, "dup_app"]
RAVYN_CHANNELS = {"INBOX_SIZ": 3}
'''

SOCKETS = '''
from django.contrib.auth.models import User

from ravyn_channels import (
    ConnectionManager, Cookie, Header, Inject, Query, WebSocket, WebSocketDisconnect, WebSocketException, websocket,
)
from ravyn_channels.auth import token_subprotocol, token_user
from ravyn_channels.permissions import BasePermission, HasPerm, IsAuthenticated, check_permissions

rooms = ConnectionManager("guard_app")


@websocket("/g/items/{item_id:int}")
async def items(
    websocket: WebSocket,
    item_id: int,
    token: str = Query(),
    page: int = Query(1),
    x_client: str = Header(),
    theme: str = Cookie(),
) -> None:
    await websocket.accept()
    await websocket.send_json({"item": item_id, "token": token, "page": page, "client": x_client, "theme": theme})


async def vip_level(level: int = Query(0)) -> int:
    if level < 3:
        raise WebSocketException(reason="VIPs only")
    return level


@websocket("/g/vip")
async def vip(websocket: WebSocket, level: int = Inject(vip_level)) -> None:
    await websocket.accept()
    await websocket.send_json(level)


@websocket("/g/me")
async def me(websocket: WebSocket, user: User) -> None:
    await websocket.accept()
    await websocket.send_text(user.username)


@websocket("/g/members", permissions=[IsAuthenticated])
async def members(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("members")


@websocket("/g/token", permissions=[IsAuthenticated])
async def token_feed(websocket: WebSocket, user=Inject(token_user)) -> None:
    await websocket.accept(subprotocol=token_subprotocol(websocket))
    await websocket.send_text(f"hello {user.username}")


@websocket("/g/staff-users", permissions=[HasPerm("auth.view_user")])
async def staff_users(websocket: WebSocket, user=Inject(token_user)) -> None:
    await websocket.accept(subprotocol=token_subprotocol(websocket))
    await websocket.send_text(f"{user.username} may view users")


class Quota(BasePermission):
    message = "two messages per connection"

    async def has_permission(self, websocket: WebSocket) -> bool:
        return getattr(websocket.state, "sent", 0) <= 2


@websocket("/g/quota", permissions=[Quota])
async def quota(websocket: WebSocket) -> None:
    await websocket.accept()
    websocket.state.sent = 0
    async for text in websocket.iter_text():
        websocket.state.sent += 1
        await check_permissions(websocket)
        await websocket.send_text(f"ok {text}")


@websocket("/g/locked", origins=["https://app.example"])
async def locked(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("in")


@websocket("/g/room/{room}")
async def room(websocket: WebSocket, room: str) -> None:
    await rooms.connect(websocket, group=room)
    await websocket.send_text("joined")
    try:
        async for _ in websocket.iter_text():
            pass
    except WebSocketDisconnect:
        pass
'''

DUP_SOCKETS = '''
from ravyn_channels import WebSocket, websocket


@websocket("/g/vip")
async def vip_again(websocket: WebSocket) -> None:
    await websocket.accept()
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The project directory, migrated once, with users: ada (no perms), vic (auth.view_user)."""
    cwd = tmp_path_factory.mktemp("guards")
    (cwd / "guard_settings.py").write_text(SETTINGS % {"db": str(cwd / "db.sqlite3"), "redis": REDIS_URL})
    (cwd / "dup_settings.py").write_text(DUPLICATE_SETTINGS)
    for app, source in (("guard_app", SOCKETS), ("dup_app", DUP_SOCKETS)):
        (cwd / app).mkdir()
        (cwd / app / "__init__.py").write_text("")
        (cwd / app / "sockets.py").write_text(source)
    manage(cwd, "migrate", "--noinput", "-v0")
    manage(
        cwd,
        "shell",
        "-c",
        "from django.contrib.auth.models import Permission, User\n"
        "User.objects.create_user('ada', password='pw')\n"
        "vic = User.objects.create_user('vic', password='pw')\n"
        "vic.user_permissions.add(Permission.objects.get(codename='view_user'))\n",
    )
    yield cwd


def manage(cwd: Path, *args: str, settings: str = "guard_settings", check: bool = True, **env: str) -> Any:
    environment = server_env(settings, **env)
    environment["PYTHONPATH"] = f"{cwd}{os.pathsep}{environment['PYTHONPATH']}"
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=cwd, env=environment, check=check, capture_output=True, text=True, timeout=60,
    )


def token_for(cwd: Path, username: str) -> str:
    code = (
        "from django.contrib.auth.models import User\n"
        "from ravyn_channels.auth import issue_token\n"
        f"print(issue_token(User.objects.get(username={username!r})))\n"
    )
    return str(manage(cwd, "shell", "-c", code).stdout.strip().splitlines()[-1])  # Django 5.2 prints a banner


def serve(start_server: StartServer, cwd: Path, server: str = "daphne", **env: str) -> Server:
    return start_server(
        "demo_project.asgi:application",
        cwd=cwd,
        settings="guard_settings",
        server=server,
        env={"PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}", **env},
    )


async def refused(ws_connect: Any, url: str, **kwargs: Any) -> int:
    """The HTTP status of a handshake that must be refused."""
    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(url, **kwargs):
            pass
    return int(info.value.response.status_code)


async def recv(ws: Any) -> Any:
    return await asyncio.wait_for(ws.recv(), 5)


@pytest.mark.parametrize("server_name", ["daphne", "uvicorn"])
async def test_each_refusal_before_accept_is_403_with_one_info_line(
    project: Path, start_server: StartServer, ws_connect: Any, server_name: str
) -> None:
    server = serve(start_server, project, server_name)
    base = server.ws
    full = {"additional_headers": {"X-Client": "pytest", "Cookie": "theme=dark"}}
    async with ws_connect(f"{base}/g/items/7?token=t&page=2", **full) as ws:
        assert json.loads(await recv(ws)) == {"item": 7, "token": "t", "page": 2, "client": "pytest", "theme": "dark"}

    no_header = {"additional_headers": {"Cookie": "theme=dark"}}
    no_cookie = {"additional_headers": {"X-Client": "c"}}
    cases = [
        ("/g/items/7?page=2", full, "items: parameter 'token': missing query parameter 'token'"),
        ("/g/items/7?token=t&page=two", full, "parameter 'page': query parameter 'page': 'two' is not an integer"),
        ("/g/items/7?token=t", no_header, "parameter 'x_client': missing header 'x-client'"),
        ("/g/items/7?token=t", no_cookie, "parameter 'theme': missing cookie 'theme'"),
        ("/g/vip?level=1", {}, "vip: parameter 'level': guard_app.sockets.vip_level refused (VIPs only)"),
        ("/g/me", {}, "me: parameter 'user': needs a logged-in user; this connection is anonymous"),
        ("/g/members", {}, "members: permission IsAuthenticated refused: the connection has no logged-in user"),
    ]
    for path, kwargs, line in cases:
        assert await refused(ws_connect, f"{base}{path}", **kwargs) == 403, path
        log = server.wait_for_log(line)
        assert log.count(line) == 1
        assert f"INFO ravyn_channels Refused websocket {path.split('?')[0]} for guard_app.sockets." in log
    assert "Traceback" not in server.log()


async def test_signed_token_in_the_subprotocol_is_echoed_as_bearer(
    project: Path, start_server: StartServer, ws_connect: Any
) -> None:
    ada = token_for(project, "ada")
    server = serve(start_server, project)
    async with ws_connect(f"{server.ws}/g/token", subprotocols=["bearer", ada]) as ws:
        assert ws.subprotocol == "bearer"
        assert await recv(ws) == "hello ada"
    async with ws_connect(f"{server.ws}/g/token?token={ada}") as ws:  # the query-string way
        assert ws.subprotocol is None
        assert await recv(ws) == "hello ada"
    assert await refused(ws_connect, f"{server.ws}/g/token", subprotocols=["bearer", "forged.token"]) == 403
    server.wait_for_log("token_user refused (invalid or expired token)")


async def test_has_perm_through_the_auth_backends(project: Path, start_server: StartServer, ws_connect: Any) -> None:
    ada, vic = token_for(project, "ada"), token_for(project, "vic")
    server = serve(start_server, project)
    async with ws_connect(f"{server.ws}/g/staff-users", subprotocols=["bearer", vic]) as ws:
        assert await recv(ws) == "vic may view users"
    assert await refused(ws_connect, f"{server.ws}/g/staff-users", subprotocols=["bearer", ada]) == 403
    line = "permission HasPerm('auth.view_user') refused: the user lacks auth.view_user"
    assert f"INFO ravyn_channels Refused websocket /g/staff-users for guard_app.sockets.staff_users: {line}" in (
        server.wait_for_log(line)
    )


@pytest.mark.parametrize("server_name", ["daphne", "uvicorn"])
async def test_per_message_permission_closes_1008(
    project: Path, start_server: StartServer, ws_connect: Any, server_name: str
) -> None:
    server = serve(start_server, project, server_name)
    async with ws_connect(f"{server.ws}/g/quota") as ws:
        for n in ("1", "2"):
            await ws.send(n)
            assert await recv(ws) == f"ok {n}"
        await ws.send("3")
        with pytest.raises(ConnectionClosed):
            await recv(ws)
    assert ws.close_code == 1008 and ws.close_reason == "permission denied"
    line = (
        "INFO ravyn_channels Closing websocket /g/quota (guard_app.sockets.quota) with 1008: "
        "permission Quota refused: two messages per connection"
    )
    assert server.wait_for_log(line).count(line) == 1


async def test_route_origins(project: Path, start_server: StartServer, ws_connect: Any) -> None:
    server = serve(start_server, project)
    async with ws_connect(f"{server.ws}/g/locked", origin="https://app.example") as ws:
        assert await recv(ws) == "in"
    assert await refused(ws_connect, f"{server.ws}/g/locked", origin=f"http://127.0.0.1:{server.port}") == 403
    log = server.wait_for_log("is not allowed (allowed: ['https://app.example'])")
    assert "WARNING ravyn_channels Refused websocket /g/locked" in log


def test_manage_py_check_reports_duplicates_and_unknown_keys(project: Path) -> None:
    clean = manage(project, "check", "--tag", "ravyn_channels")
    assert clean.returncode == 0 and "ravyn_channels." not in clean.stdout + clean.stderr
    result = manage(project, "check", settings="dup_settings", check=False)
    assert result.returncode == 1
    assert "ravyn_channels.E001" in result.stderr
    assert "Routes guard_app.sockets.vip and dup_app.sockets.vip_again both serve '/g/vip'" in result.stderr
    assert "ravyn_channels.W001" in result.stderr and "'INBOX_SIZ'" in result.stderr


def test_manage_py_ws_routes(project: Path) -> None:
    routes = json.loads(manage(project, "ws_routes", "--json").stdout)
    by_path = {r["path"]: r for r in routes}
    assert by_path["/g/members"]["permissions"] == ["IsAuthenticated"]
    assert by_path["/g/locked"]["origins"] == ["https://app.example"]
    assert by_path["/g/items/{item_id:int}"]["parameters"] == {
        "websocket": "websocket", "item_id": "path", "token": "query:token", "page": "query:page",
        "x_client": "header:x-client", "theme": "cookie:theme",
    }
    table = manage(project, "ws_routes").stdout
    assert "/g/staff-users" in table and "HasPerm('auth.view_user')" in table
    # the listing works while the checks fail (that is how E001 is investigated)
    assert "vip_again" in manage(project, "ws_routes", settings="dup_settings").stdout


@pytest.mark.redis
async def test_manage_py_ws_send_reaches_a_client_through_redis(
    project: Path, start_server: StartServer, ws_connect: Any
) -> None:
    require_redis()
    prefix = f"rc-test-{uuid.uuid4().hex[:8]}"
    server = serve(start_server, project, GUARD_REDIS_PREFIX=prefix)
    async with ws_connect(f"{server.ws}/g/room/salle%201") as ws:
        assert await recv(ws) == "joined"
        sent = await asyncio.to_thread(
            manage, project, "ws_send", "--manager", "guard_app", "salle 1", "bonjour", GUARD_REDIS_PREFIX=prefix
        )
        assert "Sent to room 'salle 1' of manager 'guard_app'" in sent.stdout
        assert await recv(ws) == "bonjour"
        await asyncio.to_thread(
            manage, project, "ws_send", "--manager", "guard_app", "--json", '{"n": 1}', GUARD_REDIS_PREFIX=prefix
        )
        assert json.loads(await recv(ws)) == {"n": 1}
