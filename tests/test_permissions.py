"""``permissions=[...]`` before accept (403 + INFO), ``check_permissions`` after (1008 + INFO)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied

from ravyn_channels import Inject, WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.permissions import (
    BasePermission,
    HasPerm,
    IsAuthenticated,
    IsStaff,
    Permission,
    check_permissions,
)
from ravyn_channels.testing import HandshakeRefused, connect

# Users are created in the test and read by HasPerm in another thread: committed data is needed.
pytestmark = pytest.mark.django_db(transaction=True)


def refusals(logs: pytest.LogCaptureFixture, path: str) -> list[logging.LogRecord]:
    return [r for r in logs.records if r.getMessage().startswith(f"Refused websocket {path} ")]


@websocket("/perm/auth", permissions=[IsAuthenticated])
async def members_only(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(f"hello {websocket.user.username}")


@websocket("/perm/staff", permissions=[IsStaff])
async def staff_only(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("staff")


@websocket("/perm/view-user", permissions=[IsAuthenticated, HasPerm("auth.view_user")])
async def can_view_users(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("granted")


@sync_to_async
def make_user(username: str, *, staff: bool = False, perm: str | None = None) -> Any:
    from django.contrib.auth.models import Permission as DjangoPermission
    from django.contrib.auth.models import User

    user = User.objects.create_user(username, password="pw", is_staff=staff)
    if perm:
        app_label, codename = perm.split(".")
        user.user_permissions.add(DjangoPermission.objects.get(content_type__app_label=app_label, codename=codename))
        user = User.objects.get(pk=user.pk)  # a fresh object: no permission cache
    return user


async def test_anonymous_is_refused_before_accept(rc_logs: pytest.LogCaptureFixture) -> None:
    with pytest.raises(HandshakeRefused):
        async with connect(members_only, "/perm/auth"):
            pass
    [line] = refusals(rc_logs, "/perm/auth")
    assert line.levelno == logging.INFO and line.exc_info is None
    assert "permission IsAuthenticated refused: the connection has no logged-in user" in line.getMessage()


async def test_logged_in_user_is_admitted() -> None:
    ada = await make_user("ada")
    async with connect(members_only, "/perm/auth", scope={"user": ada}) as ws:
        assert await ws.receive_text() == "hello ada"


async def test_is_staff(rc_logs: pytest.LogCaptureFixture) -> None:
    bob = await make_user("bob")
    boss = await make_user("boss", staff=True)
    with pytest.raises(HandshakeRefused):
        async with connect(staff_only, "/perm/staff", scope={"user": bob}):
            pass
    assert "permission IsStaff refused" in refusals(rc_logs, "/perm/staff")[0].getMessage()
    async with connect(staff_only, "/perm/staff", scope={"user": boss}) as ws:
        assert await ws.receive_text() == "staff"


async def test_has_perm_asks_the_auth_backends(rc_logs: pytest.LogCaptureFixture) -> None:
    viewer = await make_user("viewer", perm="auth.view_user")
    other = await make_user("other")
    async with connect(can_view_users, "/perm/view-user", scope={"user": viewer}) as ws:
        assert await ws.receive_text() == "granted"
    with pytest.raises(HandshakeRefused):
        async with connect(can_view_users, "/perm/view-user", scope={"user": other}):
            pass
    [line] = refusals(rc_logs, "/perm/view-user")
    assert "permission HasPerm('auth.view_user') refused: the user lacks auth.view_user" in line.getMessage()


async def test_own_permissions_sync_async_class_or_instance(rc_logs: pytest.LogCaptureFixture) -> None:
    loop_thread = threading.get_ident()
    seen: dict[str, Any] = {}

    class FromOffice(BasePermission):
        message = "not from the office network"

        def has_permission(self, websocket: WebSocket) -> bool:  # sync: runs in a thread
            seen["thread"] = threading.get_ident()
            return websocket.client is not None and websocket.client.host.startswith("10.")

    class Header:
        def __init__(self, name: str):
            self.name = name

        async def has_permission(self, websocket: WebSocket) -> bool:
            return self.name in websocket.headers

    assert isinstance(FromOffice(), Permission) and isinstance(Header("x"), Permission)

    @websocket("/perm/own", permissions=[FromOffice, Header("x-badge")])
    async def own(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("in")

    async with connect(own, "/perm/own", headers={"x-badge": "1"}, scope={"client": ("10.0.0.7", 1)}) as ws:
        assert await ws.receive_text() == "in"
    assert seen["thread"] != loop_thread
    with pytest.raises(HandshakeRefused):
        async with connect(own, "/perm/own", headers={"x-badge": "1"}, scope={"client": ("192.0.2.1", 1)}):
            pass
    with pytest.raises(HandshakeRefused):
        async with connect(own, "/perm/own", scope={"client": ("10.0.0.7", 1)}):
            pass
    lines = [r.getMessage() for r in refusals(rc_logs, "/perm/own")]
    assert len(lines) == 2
    assert "permission FromOffice refused: not from the office network" in lines[0]
    assert "permission Header refused: permission refused" in lines[1]  # no repr, no message: generic words


async def test_permission_raising_permission_denied(rc_logs: pytest.LogCaptureFixture) -> None:
    class Closed(BasePermission):
        async def has_permission(self, websocket: WebSocket) -> bool:
            raise PermissionDenied("the room is closed tonight")

    @websocket("/perm/closed", permissions=[Closed()])
    async def closed(websocket: WebSocket) -> None:
        await websocket.accept()

    with pytest.raises(HandshakeRefused):
        async with connect(closed, "/perm/closed"):
            pass
    assert "permission Closed refused: the room is closed tonight" in refusals(rc_logs, "/perm/closed")[0].getMessage()


async def test_permissions_see_the_user_a_dependency_authenticated() -> None:
    class Someone:
        is_authenticated = True
        username = "token-user"

    async def authenticate(websocket: WebSocket) -> Any:
        websocket.scope["user"] = Someone()  # type: ignore[index]
        return websocket.scope["user"]

    @websocket("/perm/dep", permissions=[IsAuthenticated])
    async def h(websocket: WebSocket, user: Any = Inject(authenticate)) -> None:
        await websocket.accept()
        await websocket.send_text(user.username)

    async with connect(h, "/perm/dep") as ws:
        assert await ws.receive_text() == "token-user"


class OpenUntilCounted(BasePermission):
    """Allows a connection while it has sent fewer than three messages."""

    message = "three messages is the limit"

    def has_permission(self, websocket: WebSocket) -> bool:
        return int(getattr(websocket.state, "count", 0)) < 3


@websocket("/perm/per-message", permissions=[OpenUntilCounted])
async def per_message(websocket: WebSocket) -> None:
    await websocket.accept()
    websocket.state.count = 0
    async for text in websocket.iter_text():
        websocket.state.count += 1
        await check_permissions(websocket)  # the route's permissions, again
        await websocket.send_text(f"ok {text}")


async def test_per_message_refusal_closes_1008(rc_logs: pytest.LogCaptureFixture) -> None:
    async with connect(per_message, "/perm/per-message") as ws:
        for n in (1, 2):
            await ws.send_text(str(n))
            assert await ws.receive_text() == f"ok {n}"
        await ws.send_text("3")
        with pytest.raises(WebSocketDisconnect) as info:
            await ws.receive_text()
        assert info.value.code == 1008 and info.value.reason == "permission denied"
    [line] = [r for r in rc_logs.records if "with 1008" in r.getMessage()]
    assert line.levelno == logging.INFO and line.exc_info is None
    assert line.getMessage() == (
        "Closing websocket /perm/per-message (tests.test_permissions.per_message) with 1008: "
        "permission OpenUntilCounted refused: three messages is the limit"
    )


async def test_check_permissions_with_explicit_permissions() -> None:
    @websocket("/perm/explicit")
    async def h(websocket: WebSocket) -> None:
        await websocket.accept()
        await check_permissions(websocket, [IsAuthenticated])

    async with connect(h, "/perm/explicit") as ws:
        assert await ws.wait_closed() == 1008


def test_permission_list_errors_name_the_route_and_fix() -> None:
    async def h(websocket: WebSocket) -> None: ...

    with pytest.raises(TypeError, match=r"h: permissions= takes a list, e\.g\. permissions=\[IsAuthenticated\]"):
        websocket("/perm/e1", permissions=IsAuthenticated)(h)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'staff' is not a permission; give a class or object with has_permission"):
        websocket("/perm/e2", permissions=["staff"])(h)
    with pytest.raises(TypeError, match=r"permission class HasPerm cannot be built without arguments.*an instance"):
        websocket("/perm/e3", permissions=[HasPerm])(h)


def test_has_perm_wants_app_label_dot_codename() -> None:
    with pytest.raises(ValueError, match=r"HasPerm\('view_user'\): name permissions as 'app_label\.codename'"):
        HasPerm("view_user")
    with pytest.raises(TypeError, match="at least one permission"):
        HasPerm()
