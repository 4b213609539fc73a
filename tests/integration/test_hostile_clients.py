"""Issue 12 (points 7-13, 17): what a hostile client sends, against a real daphne.

One Django project (the demo's settings + one app of routes under ``/h/``), served
by daphne; each test starts the server it needs. A ``websockets`` client (or a raw
HTTP request) plays the attacker; the server's log must hold one line per refusal,
escaped, and no traceback.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import REDIS_URL, ROOT, Server, StartServer, free_port, require_redis, server_env

pytestmark = pytest.mark.integration

SETTINGS = '''
import os
from demo_project.settings import *  # noqa
DEBUG = os.environ.get("H_DEBUG", "1") == "1"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": %(db)r}}
INSTALLED_APPS = [*INSTALLED_APPS, "hostile_app"]
ALLOWED_HOSTS = os.environ.get("H_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
RAVYN_CHANNELS = {}
if os.environ.get("H_ORIGINS"):
    RAVYN_CHANNELS["ORIGINS"] = os.environ["H_ORIGINS"].split(",")
if os.environ.get("H_TRUSTED_PROXIES"):
    RAVYN_CHANNELS["TRUSTED_PROXIES"] = os.environ["H_TRUSTED_PROXIES"].split(",")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"lvl": {"format": "%%(levelname)s %%(name)s %%(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "lvl"}},
    "loggers": {"ravyn_channels": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
if os.environ.get("H_REDIS_PREFIX"):
    from ravyn_channels.layers import redis_channel_layer
    CHANNEL_LAYERS = {"default": redis_channel_layer(%(redis)r, prefix=os.environ["H_REDIS_PREFIX"])}
'''

SOCKETS = '''
import ipaddress

from ravyn_channels import ConnectionManager, Query, WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.permissions import BasePermission

rooms = ConnectionManager("hostile_app", presence=True)
OFFICE = ipaddress.ip_network("10.0.0.0/8")


class FromOffice(BasePermission):
    """The README's example, as fixed: an address, compared as one."""

    message = "not from the office network"

    def has_permission(self, websocket: WebSocket) -> bool:
        client = websocket.client
        if client is None:
            return False
        try:
            return ipaddress.ip_address(client.host) in OFFICE
        except ValueError:
            return False


@websocket("/h/me")
async def me(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.user.username or "anonymous")


@websocket("/h/whoami")
async def whoami(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.client.host if websocket.client else "?")


@websocket("/h/office", permissions=[FromOffice])
async def office(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("welcome to the office")


@websocket("/h/query")
async def query(websocket: WebSocket, page: int = Query(1)) -> None:
    await websocket.accept()
    await websocket.send_text(f"page {page} of {len(websocket.query_params)} parameters")


@websocket("/h/json")
async def echo_json(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_json(await websocket.receive_json())


@websocket("/h/room/{room}")
async def room(websocket: WebSocket, room: str, nick: str = Query("")) -> None:
    await rooms.connect(websocket, group=room, meta={"nick": nick})
    await websocket.send_text("joined")
    try:
        async for _ in websocket.iter_text():
            pass
    except WebSocketDisconnect:
        pass
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The project directory, migrated once, with a user ada and her session (``session_key``)."""
    cwd = tmp_path_factory.mktemp("hostile")
    (cwd / "hostile_settings.py").write_text(SETTINGS % {"db": str(cwd / "db.sqlite3"), "redis": REDIS_URL})
    (cwd / "hostile_app").mkdir()
    (cwd / "hostile_app" / "__init__.py").write_text("")
    (cwd / "hostile_app" / "sockets.py").write_text(SOCKETS)
    manage(cwd, "migrate", "--noinput", "-v0")
    script = (
        "from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY\n"
        "from django.contrib.auth.models import User\n"
        "from django.contrib.sessions.backends.db import SessionStore\n"
        "ada = User.objects.create_user('ada', password='pw')\n"
        "s = SessionStore()\n"
        "s[SESSION_KEY] = str(ada.pk)\n"
        "s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
        "s[HASH_SESSION_KEY] = ada.get_session_auth_hash()\n"
        "s.create()\n"
        "print(s.session_key)\n"
    )
    key = manage(cwd, "shell", "-c", script).stdout.strip().splitlines()[-1]
    (cwd / "session_key").write_text(key)
    yield cwd


def manage(cwd: Path, *args: str, check: bool = True, **env: str) -> Any:
    environment = server_env("hostile_settings", **env)
    environment["PYTHONPATH"] = f"{cwd}{os.pathsep}{environment['PYTHONPATH']}"
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=cwd, env=environment, check=check, capture_output=True, text=True, timeout=60,
    )


def serve(start_server: StartServer, cwd: Path, *daphne_args: str, **env: str) -> Server:
    """``daphne [daphne_args] demo_project.asgi:application`` on a free port."""
    port = free_port()
    argv = f"-m daphne -b 127.0.0.1 -p {port} {' '.join(daphne_args)} demo_project.asgi:application"
    return start_server(
        argv,
        cwd=cwd,
        settings="hostile_settings",
        server="python",
        port=port,
        env={"PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}", **env},
    )


async def refused(url: str, **kwargs: Any) -> int:
    """The HTTP status of a handshake that must be refused."""
    from websockets.asyncio.client import connect

    with pytest.raises(InvalidStatus) as info:
        async with connect(url, open_timeout=5, **kwargs):
            pass
    return int(info.value.response.status_code)


async def first_text(url: str, **kwargs: Any) -> str:
    from websockets.asyncio.client import connect

    async with connect(url, open_timeout=5, close_timeout=5, **kwargs) as ws:
        return str(await asyncio.wait_for(ws.recv(), 5))


def no_traceback(server: Server) -> None:
    log = server.log()
    assert "Traceback" not in log and "ERROR" not in log, log


# -- 7. ALLOWED_HOSTS = ["*"] turns the Origin check off --------------------------------------


async def test_wildcard_allowed_hosts_is_reported_and_origins_close_the_hole(
    project: Path, start_server: StartServer
) -> None:
    cookie = {"Cookie": f"sessionid={(project / 'session_key').read_text()}"}
    evil = {"origin": "https://evil.example", "additional_headers": cookie}
    wide = {"H_ALLOWED_HOSTS": "*", "H_DEBUG": "0"}
    server = serve(start_server, project, **wide)
    # the hole the checks report: a page on any site acts as the logged-in visitor
    assert await first_text(f"{server.ws}/h/me", **evil) == "ada"

    check = manage(project, "check", **wide)
    assert "ravyn_channels.W020" in check.stderr and "ALLOWED_HOSTS contains '*'" in check.stderr
    deploy = manage(project, "check", "--deploy", check=False, **wide)
    assert deploy.returncode == 1 and "ravyn_channels.E020" in deploy.stderr

    origins = {**wide, "H_ORIGINS": "http://127.0.0.1:8000"}
    server = serve(start_server, project, **origins)
    assert await refused(f"{server.ws}/h/me", **evil) == 403
    assert await first_text(f"{server.ws}/h/me", origin="http://127.0.0.1:8000", additional_headers=cookie) == "ada"
    server.wait_for_log("Origin 'https://evil.example' is not allowed")
    deploy = manage(project, "check", "--deploy", check=False, **origins)
    assert "ravyn_channels.E020" not in deploy.stderr and "ravyn_channels.W020" not in deploy.stderr
    no_traceback(server)


# -- 8. X-Forwarded-For behind daphne --proxy-headers ------------------------------------------

FORGED = {"X-Forwarded-For": "10.0.0.5, 203.0.113.7"}  # the client wrote 10.0.0.5; our proxy appended the rest


async def test_forged_forwarded_for_is_ignored_with_trusted_proxies(project: Path, start_server: StartServer) -> None:
    # This test client connects from 127.0.0.1: it plays the reverse proxy that appended 203.0.113.7.
    server = serve(start_server, project, "--proxy-headers", H_TRUSTED_PROXIES="127.0.0.1")
    headers = {"additional_headers": FORGED}
    assert await first_text(f"{server.ws}/h/whoami", **headers) == "203.0.113.7"
    assert await refused(f"{server.ws}/h/office", **headers) == 403
    server.wait_for_log("permission FromOffice refused: not from the office network")
    assert await first_text(f"{server.ws}/h/office", additional_headers={"X-Forwarded-For": "10.2.3.4"}) == (
        "welcome to the office"
    )
    assert "--proxy-headers takes the client's address" not in server.log()
    no_traceback(server)


async def test_a_peer_that_is_not_a_trusted_proxy_is_the_client(project: Path, start_server: StartServer) -> None:
    server = serve(start_server, project, "--proxy-headers", H_TRUSTED_PROXIES="10.9.9.9")
    assert await first_text(f"{server.ws}/h/whoami", additional_headers=FORGED) == "127.0.0.1"
    assert await refused(f"{server.ws}/h/office", additional_headers=FORGED) == 403


async def test_proxy_headers_without_trusted_proxies_warns_once(project: Path, start_server: StartServer) -> None:
    server = serve(start_server, project, "--proxy-headers")
    for _ in range(2):  # daphne's own rule: the leftmost entry, which the client wrote
        assert await first_text(f"{server.ws}/h/whoami", additional_headers=FORGED) == "10.0.0.5"
    log = server.wait_for_log("--proxy-headers takes the client's address from the leftmost")
    assert log.count("WARNING ravyn_channels daphne --proxy-headers") == 1
    assert "RAVYN_CHANNELS['TRUSTED_PROXIES']" in log


# -- 9. origins with scheme and port --------------------------------------------------------


async def test_allowed_hosts_origins_are_host_only_explicit_origins_pin_scheme_and_port(
    project: Path, start_server: StartServer
) -> None:
    server = serve(start_server, project)
    url = f"{server.ws}/h/whoami"
    # ALLOWED_HOSTS = ["127.0.0.1", "localhost"]: any scheme and port of those hosts (documented)
    assert await first_text(url, origin="http://127.0.0.1:9999") == "127.0.0.1"
    assert await first_text(url, origin="https://localhost") == "127.0.0.1"
    server = serve(start_server, project, H_ORIGINS="http://127.0.0.1:8000,localhost:8001")
    url = f"{server.ws}/h/whoami"
    for origin in ("http://127.0.0.1:8000", "http://localhost:8001", "https://localhost:8001"):
        assert await first_text(url, origin=origin) == "127.0.0.1", origin
    for origin in ("http://127.0.0.1:9999", "https://127.0.0.1:8000", "https://127.0.0.1", "http://localhost"):
        assert await refused(url, origin=origin) == 403, origin
        server.wait_for_log(f"Origin '{origin}' is not allowed")
    # an origin that does not even parse: refused with one WARNING, not a 500 and a traceback
    for origin in ("http://[::1", "http://127.0.0.1:99999"):  # daphne's autobahn answers 400 itself;
        assert await refused(url, origin=origin) in (400, 403)  # the unit tests cover other servers
    no_traceback(server)


# -- 10. more query parameters than DATA_UPLOAD_MAX_NUMBER_FIELDS -------------------------------


async def test_too_many_query_parameters_get_403_and_one_warning(project: Path, start_server: StartServer) -> None:
    server = serve(start_server, project)
    assert await first_text(f"{server.ws}/h/query?page=2&" + "&".join(["a"] * 999)) == "page 2 of 2 parameters"
    for _ in range(3):
        assert await refused(f"{server.ws}/h/query?page=2&" + "&".join(["a"] * 1000)) == 403
    line = "WARNING ravyn_channels Refused websocket /h/query from 127.0.0.1:"
    log = server.wait_for_log("1001 query parameters (DATA_UPLOAD_MAX_NUMBER_FIELDS is 1000)")
    assert log.count(line) == 3
    no_traceback(server)


# -- 11. deeply nested JSON -------------------------------------------------------------------


async def test_deeply_nested_json_closes_1007_with_one_warning(project: Path, start_server: StartServer) -> None:
    from websockets.asyncio.client import connect

    server = serve(start_server, project)
    async with connect(f"{server.ws}/h/json", open_timeout=5, close_timeout=5) as ws:
        await ws.send('{"ok": [1]}')
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"ok": [1]}
        await ws.send("[" * 200_000 + "]" * 200_000)  # 400 kB, under the 1 MiB limit
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1007
    line = "WARNING ravyn_channels hostile_app.sockets.echo_json: receive_json() got JSON nested too deeply"
    assert server.wait_for_log(line).count(line) == 1
    no_traceback(server)


# -- 12. control characters in log lines ----------------------------------------------------


async def test_crlf_in_the_path_does_not_forge_log_lines(project: Path, start_server: StartServer) -> None:
    server = serve(start_server, project)
    assert await refused(f"{server.ws}/h/none%0D%0ACRITICAL%20forged%E2%80%AE%1B[2J") == 403
    assert await refused(f"{server.ws}/h/query?page=%0D%0ACRITICAL%20forged") == 403
    log = server.wait_for_log("Refused websocket /h/none")
    log = server.wait_for_log("parameter 'page'")
    assert "Refused websocket /h/none\\r\\nCRITICAL forged\\u202e\\u001b[2J from 127.0.0.1:" in log
    assert not any(line.startswith("CRITICAL") for line in log.splitlines())
    assert "\u202e" not in log and "\x1b" not in log
    no_traceback(server)


# -- 13. static files in DEBUG --------------------------------------------------------------


def http_get(server: Server, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)  # sent as written: no client-side normalisation of ".."
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


TRAVERSALS = [
    "/static/../hostile_settings.py",
    "/static/../../../etc/passwd",
    "/static/chat/../../x",
    "/static/%2e%2e/x",
]


async def test_static_traversal_in_debug_is_404(project: Path, start_server: StartServer) -> None:
    server = serve(start_server, project, H_DEBUG="1")
    assert await asyncio.to_thread(http_get, server, "/static/chat/chat.js") == 200
    for path in TRAVERSALS:
        assert await asyncio.to_thread(http_get, server, path) == 404, path
    assert "Traceback" not in server.log() and "SuspiciousFileOperation" not in server.log()


# -- 17. ws_send --json with NaN; ws_presence with bidi controls --------------------------------


@pytest.mark.redis
async def test_ws_send_refuses_nan_and_ws_presence_escapes_bidi(project: Path, start_server: StartServer) -> None:
    from websockets.asyncio.client import connect

    require_redis()
    prefix = f"rc-test-{uuid.uuid4().hex[:8]}"
    server = serve(start_server, project, H_REDIS_PREFIX=prefix)
    room = f"r{uuid.uuid4().hex[:6]}"
    nick = "eve\u202egpj.exe\u2066"
    async with connect(f"{server.ws}/h/room/{room}?nick={quote(nick)}", open_timeout=5, close_timeout=5) as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "joined"
        send = ("ws_send", "--manager", "hostile_app", room, "--json")
        sent = await asyncio.to_thread(manage, project, *send, '{"t": NaN}', check=False, H_REDIS_PREFIX=prefix)
        assert sent.returncode == 1
        assert "--json: MESSAGE is not valid JSON (NaN is not JSON" in sent.stderr
        await asyncio.to_thread(manage, project, *send, '{"t": 1.5}', H_REDIS_PREFIX=prefix)
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"t": 1.5}  # the first thing that arrived

        show = ("ws_presence", "--manager", "hostile_app", room)
        table = (await asyncio.to_thread(manage, project, *show, H_REDIS_PREFIX=prefix)).stdout
        listing = (await asyncio.to_thread(manage, project, *show, "--json", H_REDIS_PREFIX=prefix)).stdout
    assert "1 connection in room" in table
    assert '{"nick": "eve\\u202egpj.exe\\u2066"}' in table
    assert "\u202e" not in table + listing and "\u2066" not in table + listing
    assert json.loads(listing)[0]["meta"] == {"nick": nick}
