"""ravyn_channels.ops in one process (in-memory layer): kick, disconnect_user, disconnect_room, argument errors."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client

from ravyn_channels import ConnectionManager, Inject, WebSocket, WebSocketDisconnect, ops, websocket
from ravyn_channels.auth import issue_token, token_user
from ravyn_channels.testing import connect

pytestmark = pytest.mark.django_db(transaction=True)

manager = ConnectionManager("tests.ops")
seen: list[tuple[int, str]] = []


@websocket("/ops/{room}")
async def managed(websocket: WebSocket, room: str) -> None:
    await manager.connect(websocket, group=room)
    await websocket.send_text(websocket.connection_id or "")
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect as exc:
        seen.append((exc.code, exc.reason))


@websocket("/plain")
async def plain(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.connection_id or "")
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect as exc:
        seen.append((exc.code, exc.reason))


async def login(username: str) -> dict[str, str]:
    """A real session cookie for a new user, as Django's login makes it."""

    def make() -> str:
        user = User.objects.create_user(username, password="pw")
        client = Client()
        client.force_login(user)
        return str(client.cookies["sessionid"].value)

    return {"Cookie": f"sessionid={await sync_to_async(make)()}"}


async def test_an_unmanaged_socket_has_a_connection_id_and_can_be_kicked() -> None:
    seen.clear()
    async with connect(plain, "/plain") as ws, connect(plain, "/plain") as other:
        cid = await ws.receive_text()
        assert "#" in cid and cid != await other.receive_text()
        await ops.kick(cid, code=4005, reason="out")
        assert await ws.wait_closed() == 4005 and ws.close_reason == "out"
        assert await other.receive_nothing(0.2)
    assert (4005, "out") in seen


async def test_disconnect_room_closes_its_members_only() -> None:
    async with connect(managed, "/ops/a") as a1, connect(managed, "/ops/a") as a2, connect(managed, "/ops/b") as b1:
        for ws in (a1, a2, b1):
            await ws.receive_text()
        await manager.disconnect_room("a", code=4100, reason="closing a")
        assert await a1.wait_closed() == 4100 and await a2.wait_closed() == 4100
        assert a1.close_reason == "closing a"
        assert await b1.receive_nothing(0.2)


async def test_disconnect_user_closes_that_users_sockets_only() -> None:
    ada, bob = await login("ada"), await login("bob")
    async with connect(managed, "/ops/x", headers=ada) as ada1, connect(plain, "/plain", headers=ada) as ada2, connect(
        managed, "/ops/x", headers=bob
    ) as bob1:
        for ws in (ada1, ada2, bob1):
            await ws.receive_text()
        user = await User.objects.aget(username="ada")
        await manager.disconnect_user(user, code=4200, reason="bye")
        assert await ada1.wait_closed() == 4200
        assert await ada2.receive_nothing(0.2)  # not connected through this manager
        await ops.disconnect_user(user.pk, reason="everywhere")
        assert await ada2.wait_closed() == 1008 and ada2.close_reason == "everywhere"
        assert await bob1.receive_nothing(0.2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ops.kick("no-id"), "a connection_id string, got .no-id."),
        (lambda: ops.kick("x#1", code=1006), "1006 is not a close code"),
        (lambda: ops.disconnect_user(1, reason="é" * 62), "at most 123 UTF-8 bytes"),
        (lambda: manager.disconnect_room("a", code=999), "999 is not a close code"),
    ],
)
async def test_nonsense_is_refused_with_a_clear_error(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await call()


# -- a login that ends closes its sockets (ravyn_channels.logouts) ----------------------------


def _session_key(headers: dict[str, str]) -> str:
    return headers["Cookie"].partition("=")[2]


async def _second_session(username: str) -> dict[str, str]:
    def make() -> str:
        client = Client()
        client.force_login(User.objects.get(username=username))
        return str(client.cookies["sessionid"].value)

    return {"Cookie": f"sessionid={await sync_to_async(make)()}"}


def _django_logout(username: str, session_key: str) -> None:
    """Django's own logout() for a request carrying that session (sends user_logged_out)."""
    from django.contrib.auth import logout
    from django.contrib.sessions.backends.db import SessionStore
    from django.http import HttpRequest

    request = HttpRequest()
    request.session = SessionStore(session_key)
    request.user = User.objects.get(username=username)
    logout(request)


async def test_logout_closes_that_sessions_sockets_only() -> None:
    first = await login("ada")
    second, bob = await _second_session("ada"), await login("bob")
    async with connect(plain, "/plain", headers=first) as s1, connect(managed, "/ops/r", headers=first) as s1b, connect(
        plain, "/plain", headers=second
    ) as s2, connect(plain, "/plain", headers=bob) as b:
        for ws in (s1, s1b, s2, b):
            await ws.receive_text()
        await sync_to_async(_django_logout)("ada", _session_key(first))
        assert await s1.wait_closed() == 1008 and s1.close_reason == "logged out"
        assert await s1b.wait_closed() == 1008
        assert await s2.receive_nothing(0.2) and await b.receive_nothing(0.1)


async def test_deactivation_closes_every_socket_of_the_user() -> None:
    first = await login("ada")
    second, bob = await _second_session("ada"), await login("bob")
    async with connect(plain, "/plain", headers=first) as s1, connect(plain, "/plain", headers=second) as s2, connect(
        plain, "/plain", headers=bob
    ) as b:
        for ws in (s1, s2, b):
            await ws.receive_text()
        ada = await User.objects.aget(username="ada")
        await ada.asave(update_fields=["last_login"])  # every login does this: nothing closes
        assert await s1.receive_nothing(0.2)
        ada.is_active = False
        await ada.asave()
        for ws in (s1, s2):
            assert await ws.wait_closed() == 1008 and ws.close_reason == "account deactivated"
        assert await b.receive_nothing(0.2)


async def test_password_change_closes_the_sockets_opened_before() -> None:
    ada_cookie, bob = await login("ada"), await login("bob")
    async with connect(plain, "/plain", headers=ada_cookie) as s1, connect(plain, "/plain", headers=bob) as b:
        await s1.receive_text()
        await b.receive_text()
        ada = await User.objects.aget(username="ada")
        ada.first_name = "Ada"
        await ada.asave()  # a save that keeps the password keeps the sockets
        assert await s1.receive_nothing(0.2)
        ada.set_password("new password")
        await ada.asave()
        assert await s1.wait_closed() == 1008 and s1.close_reason == "password changed"
        assert await b.receive_nothing(0.2)


async def test_close_on_logout_can_be_turned_off() -> None:
    from django.test import override_settings

    first = await login("ada")
    with override_settings(RAVYN_CHANNELS={"CLOSE_ON_LOGOUT": False}):
        async with connect(plain, "/plain", headers=first) as s1:
            await s1.receive_text()
            await sync_to_async(_django_logout)("ada", _session_key(first))
            ada = await User.objects.aget(username="ada")
            ada.is_active = False
            await ada.asave()
            assert await s1.receive_nothing(0.3)


@websocket("/token")
async def with_token(websocket: WebSocket, user: Any = Inject(token_user)) -> None:
    await websocket.accept()
    await websocket.send_text(user.username)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass


async def test_a_token_authenticated_socket_closes_on_deactivation() -> None:
    await login("ada")
    ada = await User.objects.aget(username="ada")
    token = await sync_to_async(issue_token)(ada)
    async with connect(with_token, f"/token?token={token}") as ws:
        assert await ws.receive_text() == "ada"
        ada.is_active = False
        await ada.asave()
        assert await ws.wait_closed() == 1008 and ws.close_reason == "account deactivated"
