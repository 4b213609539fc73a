"""Token authentication: ``["bearer", token]`` subprotocols or ``?token=``, echoed correctly on accept."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from ravyn_channels import Inject, Query, WebSocket, websocket
from ravyn_channels.auth import aissue_token, bearer_token, issue_token, token_subprotocol, token_user, user_from_token
from ravyn_channels.permissions import IsAuthenticated
from ravyn_channels.testing import HandshakeRefused, connect

pytestmark = pytest.mark.django_db(transaction=True)


@websocket("/auth/feed", permissions=[IsAuthenticated])
async def feed(websocket: WebSocket, user: Any = Inject(token_user)) -> None:
    await websocket.accept(subprotocol=token_subprotocol(websocket))
    await websocket.send_text(f"{user.username} {websocket.user.username}")


@sync_to_async
def make_user(username: str) -> Any:
    from django.contrib.auth.models import User

    return User.objects.create_user(username, password="pw")


def ws_offering(*subprotocols: str) -> WebSocket:
    scope = {"type": "websocket", "path": "/", "subprotocols": list(subprotocols)}

    async def nothing() -> Any: ...

    return WebSocket(scope, nothing, nothing)  # type: ignore[arg-type]


def test_bearer_token_is_the_entry_after_bearer() -> None:
    assert bearer_token(ws_offering("chat.v1", "bearer", "abc.def")) == "abc.def"
    assert bearer_token(ws_offering("Bearer", "t")) == "t"
    assert bearer_token(ws_offering("bearer")) is None  # nothing follows
    assert bearer_token(ws_offering("chat.v1")) is None


def test_token_subprotocol_echoes_only_what_was_offered() -> None:
    assert token_subprotocol(ws_offering("bearer", "t")) == "bearer"
    assert token_subprotocol(ws_offering("chat.v1")) is None


async def test_issued_token_names_its_user() -> None:
    ada = await make_user("ada")
    token = await sync_to_async(issue_token)(ada)
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    assert (await user_from_token(token)).pk == ada.pk  # type: ignore[union-attr]
    assert await user_from_token(token + "x") is None
    assert await user_from_token(token, max_age=-1) is None  # expired


async def test_password_change_voids_tokens() -> None:
    ada = await make_user("ada")
    token = await aissue_token(ada)
    ada.set_password("new")
    await sync_to_async(ada.save)()
    assert await user_from_token(token) is None


def test_anonymous_users_get_no_token() -> None:
    from django.contrib.auth.models import AnonymousUser

    with pytest.raises(ValueError, match="needs a logged-in user"):
        issue_token(AnonymousUser())


async def test_token_in_subprotocol_is_accepted_with_bearer_echoed() -> None:
    ada = await make_user("ada")
    async with connect(feed, "/auth/feed", subprotocols=["bearer", await aissue_token(ada)]) as ws:
        assert ws.subprotocol == "bearer"
        assert await ws.receive_text() == "ada ada"  # the dependency set websocket.user


async def test_token_in_query_string_is_accepted_without_subprotocol() -> None:
    ada = await make_user("ada")
    async with connect(feed, f"/auth/feed?token={await aissue_token(ada)}") as ws:
        assert ws.subprotocol is None
        assert await ws.receive_text() == "ada ada"


async def test_missing_or_bad_token_is_refused(rc_logs: pytest.LogCaptureFixture) -> None:
    for path, subprotocols in [("/auth/feed", []), ("/auth/feed", ["bearer", "forged.token"])]:
        with pytest.raises(HandshakeRefused):
            async with connect(feed, path, subprotocols=subprotocols):
                pass
    lines = [r for r in rc_logs.records if r.getMessage().startswith("Refused websocket /auth/feed")]
    assert [r.levelno for r in lines] == [logging.INFO, logging.INFO]
    assert "parameter 'user': ravyn_channels.auth.token_user refused (no token" in lines[0].getMessage()
    assert "refused (invalid or expired token)" in lines[1].getMessage()


@websocket("/auth/hold", permissions=[IsAuthenticated])
async def hold(websocket: WebSocket, user: Any = Inject(token_user)) -> None:
    """Echo until the client leaves."""
    await websocket.accept(subprotocol=token_subprotocol(websocket))
    async for text in websocket.iter_text():
        await websocket.send_text(text)


async def test_revoked_tokens_are_refused_and_new_ones_work() -> None:
    from ravyn_channels.auth import arevoke_tokens

    ada = await make_user("ada")
    old = await aissue_token(ada)
    await arevoke_tokens(ada)
    assert await user_from_token(old) is None
    fresh = await aissue_token(ada)
    assert (await user_from_token(fresh)).pk == ada.pk  # type: ignore[union-attr]
    await arevoke_tokens(ada.pk)  # a pk works as well
    assert await user_from_token(fresh) is None


async def test_logout_revokes_tokens_unless_turned_off(settings: Any) -> None:
    from django.contrib.auth.signals import user_logged_out

    ada = await make_user("ada")
    token = await aissue_token(ada)
    settings.RAVYN_CHANNELS = {"TOKEN_REVOKE_ON_LOGOUT": False}
    await sync_to_async(user_logged_out.send)(sender=type(ada), request=None, user=ada)
    assert await user_from_token(token) is not None
    settings.RAVYN_CHANNELS = {}
    await sync_to_async(user_logged_out.send)(sender=type(ada), request=None, user=ada)
    assert await user_from_token(token) is None


async def test_payload_reveals_pk_and_generation_only() -> None:
    import base64
    import zlib

    ada = await make_user("ada_secret_name")
    token = await aissue_token(ada)
    body = token.split(".")[0]
    raw = base64.urlsafe_b64decode(body.lstrip(".") + "=" * (-len(body) % 4))
    data = zlib.decompress(raw) if token.startswith(".") else raw
    pk, digest, generation = __import__("json").loads(data)
    assert (pk, generation) == (str(ada.pk), 0)
    assert len(digest) == 16 and digest not in ada.get_session_auth_hash()
    assert b"ada_secret_name" not in data and ada.get_session_auth_hash().encode() not in data


async def test_revocation_closes_open_token_connections_in_this_process() -> None:
    from ravyn_channels.auth import arevoke_tokens

    ada, bob = await make_user("ada"), await make_user("bob")
    async with connect(hold, "/auth/hold", subprotocols=["bearer", await aissue_token(ada)]) as a:
        async with connect(hold, "/auth/hold", subprotocols=["bearer", await aissue_token(bob)]) as b:
            await a.send_text("hi")
            assert await a.receive_text() == "hi"
            await arevoke_tokens(ada)
            assert await a.wait_closed() == 1008
            assert a.close_reason == "token revoked"
            await b.send_text("still here")
            assert await b.receive_text() == "still here"


async def test_password_change_closes_open_token_connections() -> None:
    ada = await make_user("ada")
    async with connect(hold, "/auth/hold", subprotocols=["bearer", await aissue_token(ada)]) as a:
        ada.set_password("new")
        await sync_to_async(ada.save)()
        assert await a.wait_closed() == 1008


@websocket("/auth/hold/{room}", permissions=[IsAuthenticated])
async def hold_room(websocket: WebSocket, room: str, user: Any = Inject(token_user)) -> None:
    await websocket.accept(subprotocol=token_subprotocol(websocket))
    async for text in websocket.iter_text():
        await websocket.send_text(text)


async def test_revocation_close_log_line_escapes_the_client_path(rc_logs: pytest.LogCaptureFixture) -> None:
    from ravyn_channels.auth import arevoke_tokens

    ada = await make_user("ada")
    path = "/auth/hold/a%0D%0AFORGED%E2%80%AE"
    async with connect(hold_room, path, subprotocols=["bearer", await aissue_token(ada)]) as a:
        await arevoke_tokens(ada)
        assert await a.wait_closed() == 1008
    [line] = [r.getMessage() for r in rc_logs.records if "token revoked" in r.getMessage()]
    assert "\n" not in line and "\r" not in line and "\u202e" not in line
    assert "/auth/hold/a\\r\\nFORGED\\u202e" in line


async def own_user(websocket: WebSocket, expires_in: float = Query(0.0)) -> Any:
    """A dependency checking "your own" token: set_token_user with an expiry ``expires_in`` from now."""
    from django.contrib.auth.models import User

    from ravyn_channels.auth import set_token_user

    user = await User.objects.aget(username="ada")
    set_token_user(websocket, user, expires_at=time.time() + expires_in)
    return user


@websocket("/auth/own", permissions=[IsAuthenticated])
async def own_token(websocket: WebSocket, user: Any = Inject(own_user)) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


@websocket("/auth/session")
async def session_socket(websocket: WebSocket) -> None:
    """A socket of ada authenticated otherwise (as a session would: the scope's user)."""
    from django.contrib.auth.models import User

    websocket.scope["user"] = await User.objects.aget(username="ada")  # type: ignore[index]
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


def expiry_timers() -> list[asyncio.TimerHandle]:
    """This loop's pending expiry timers (CPython's scheduler list: the test looks for a leak)."""
    from ravyn_channels import auth

    loop = asyncio.get_running_loop()
    return [h for h in loop._scheduled if h._callback is auth._expire and not h.cancelled()]  # type: ignore[attr-defined]


async def test_a_token_socket_closes_when_its_token_expires(rc_logs: pytest.LogCaptureFixture) -> None:
    await make_user("ada")
    async with connect(own_token, "/auth/own?expires_in=0.3") as ws:
        await ws.send_text("hi")
        assert await ws.receive_text() == "hi"
        assert await ws.wait_closed(5) == 1008
        assert ws.close_reason == "token expired"
    assert any("with 1008: token expired" in r.getMessage() for r in rc_logs.records)
    assert not expiry_timers()


async def test_the_expiry_timer_is_cancelled_when_the_socket_closes_first() -> None:
    await make_user("ada")
    async with connect(own_token, "/auth/own?expires_in=300") as ws:
        await ws.send_text("hi")
        assert await ws.receive_text() == "hi"
        assert len(expiry_timers()) == 1
    assert not expiry_timers()


async def test_expiry_closes_nothing_when_turned_off(settings: Any) -> None:
    settings.RAVYN_CHANNELS = {"CLOSE_ON_TOKEN_EXPIRY": False}
    await make_user("ada")
    async with connect(own_token, "/auth/own?expires_in=0") as ws:
        await ws.send_text("hi")
        assert await ws.receive_text() == "hi"  # accepted with an expired token's expiry: no timer
        assert not expiry_timers()


async def test_revocation_closes_token_sockets_only() -> None:
    from ravyn_channels.auth import arevoke_tokens

    ada = await make_user("ada")
    async with connect(hold, "/auth/hold", subprotocols=["bearer", await aissue_token(ada)]) as by_token:
        async with connect(session_socket, "/auth/session") as by_session:
            await by_token.send_text("hi")
            assert await by_token.receive_text() == "hi"
            await arevoke_tokens(ada)
            assert await by_token.wait_closed(5) == 1008
            await by_session.send_text("still here")
            assert await by_session.receive_text() == "still here"


async def test_revocation_closes_sockets_of_your_own_tokens() -> None:
    from ravyn_channels.auth import arevoke_tokens

    ada = await make_user("ada")
    async with connect(own_token, "/auth/own?expires_in=300") as ws:
        await arevoke_tokens(ada)
        assert await ws.wait_closed(5) == 1008
        assert ws.close_reason == "token revoked"


async def test_revocation_closes_nothing_when_turned_off(settings: Any) -> None:
    from ravyn_channels.auth import arevoke_tokens

    settings.RAVYN_CHANNELS = {"CLOSE_ON_TOKEN_REVOKE": False}
    ada = await make_user("ada")
    async with connect(hold, "/auth/hold", subprotocols=["bearer", await aissue_token(ada)]) as ws:
        await arevoke_tokens(ada)  # applied on this loop before it returns, when on
        await ws.send_text("still here")
        assert await ws.receive_text() == "still here"
