"""ravyn_channels.limits in one process: rates, token buckets, routes' and global limits, checks."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import override_settings

from ravyn_channels import WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.checks import check_rate_limits, check_rate_limits_deploy, check_settings
from ravyn_channels.limits import MemoryBuckets, Rate, RateLimit, parse_rate
from ravyn_channels.testing import HandshakeRefused, connect

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("20/s", Rate(20, 1.0)),
        ("100/10s", Rate(100, 10.0)),
        ("60/min burst 120", Rate(60, 60.0, 120)),
        ("5 / 2h", Rate(5, 7200.0)),
    ],
)
def test_rates_parse(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0/s", "20", "20/fortnight", "-1/s", "20/s burst 0", "ten/s", "20/0s"])
def test_nonsense_rates_are_refused_with_the_syntax(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_route_refuses_a_bad_rate_limit_at_decoration() -> None:
    with pytest.raises(ValueError, match=r"rate_limit=.*'20/fortnight'"):

        @websocket("/bad", rate_limit="20/fortnight")
        async def bad(websocket: WebSocket) -> None: ...

    with pytest.raises(ValueError, match="close_code=1011"):
        RateLimit(messages="1/s", close_code=1011)


def test_token_bucket_allows_the_burst_then_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("ravyn_channels.limits.time.monotonic", lambda: now[0])
    buckets, rate = MemoryBuckets(), Rate(2, 1.0, burst=5)
    assert [buckets.take("k", rate) for _ in range(6)] == [True] * 5 + [False]
    now[0] += 0.5  # one token back
    assert buckets.take("k", rate) and not buckets.take("k", rate)
    assert buckets.take("other", rate)  # buckets are per key


received: list[str] = []


@websocket("/limited", rate_limit=RateLimit(messages="3/min"))
async def limited(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        async for text in websocket.iter_text():
            received.append(text)
    except WebSocketDisconnect:
        pass


@websocket("/dropping", rate_limit=RateLimit(messages="3/min", on_message_limit="drop"))
async def dropping(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


async def test_messages_over_the_limit_close_with_1008_and_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    received.clear()
    caplog.set_level(logging.WARNING, "ravyn_channels")
    async with connect(limited, "/limited") as ws:
        for i in range(10):
            await ws.send_text(str(i))
        assert await ws.wait_closed() == 1008 and ws.close_reason == "rate limited"
    assert received == ["0", "1", "2"]
    assert sum("over messages = 3/60s" in r.getMessage() for r in caplog.records) == 1


async def test_drop_policy_discards_and_warns_once_per_window(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "ravyn_channels")
    async with connect(dropping, "/dropping") as ws:
        for i in range(50):
            await ws.send_text(str(i))
        assert [await ws.receive_text() for _ in range(3)] == ["0", "1", "2"]
        assert await ws.receive_nothing(0.2)
    assert sum("dropping messages" in r.getMessage() for r in caplog.records) == 1


@websocket("/open")
async def open_route(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")


async def test_global_handshake_limit_per_ip_refuses_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "ravyn_channels")
    limits = {"HANDSHAKES_PER_IP": "2/min"}
    with override_settings(RAVYN_CHANNELS={"RATE_LIMITS": limits, "TRUSTED_PROXIES": ["127.0.0.1"]}):
        for _ in range(2):
            async with connect(open_route, "/open", headers={"X-Forwarded-For": "203.0.113.9"}) as ws:
                assert await ws.receive_text() == "hi"
        for _ in range(3):
            with pytest.raises(HandshakeRefused) as info:
                async with connect(open_route, "/open", headers={"X-Forwarded-For": "203.0.113.9"}):
                    pass
            assert info.value.status_code == 429
            assert info.value.json() == {"detail": "over handshakes_per_ip = 2/60s"}
        async with connect(open_route, "/open", headers={"X-Forwarded-For": "203.0.113.10"}) as ws:
            assert await ws.receive_text() == "hi"  # another client has its own bucket
    warned = [r.getMessage() for r in caplog.records if "Refusing websocket handshakes" in r.getMessage()]
    assert len(warned) == 1 and "203.0.113.9" in warned[0]


@pytest.mark.parametrize(
    "value",
    [{"MESSAGES": "lots"}, {"HANDSHAKES": "1/s"}, {"ON_MESSAGE_LIMIT": "ban"}, {"CLOSE_CODE": 1006}, ["20/s"]],
)
def test_check_e100_reports_nonsense_limits(value: Any) -> None:
    with override_settings(RAVYN_CHANNELS={"RATE_LIMITS": value}):
        assert [m.id for m in check_rate_limits()] == ["ravyn_channels.E100"]


def test_check_e100_accepts_valid_limits_and_w100_wants_trusted_proxies() -> None:
    good = {"HANDSHAKES_PER_IP": "60/min", "MESSAGES": "20/s burst 40", "ON_MESSAGE_LIMIT": "drop", "CLOSE_CODE": 1013}
    with override_settings(RAVYN_CHANNELS={"RATE_LIMITS": good}):
        assert check_rate_limits() == []
        assert [m.id for m in check_rate_limits_deploy()] == ["ravyn_channels.W100"]
    with override_settings(RAVYN_CHANNELS={"RATE_LIMITS": good, "TRUSTED_PROXIES": ["10.0.0.1"]}):
        assert check_rate_limits_deploy() == []


def test_check_e004_close_on_logout_is_a_bool() -> None:
    with override_settings(RAVYN_CHANNELS={"CLOSE_ON_LOGOUT": "no"}):
        assert [m.id for m in check_settings()] == ["ravyn_channels.E004"]


@websocket("/per-user", rate_limit=RateLimit(handshakes_per_user="2/min"))
async def per_user(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.user.username)


@pytest.mark.django_db(transaction=True)
async def test_handshakes_per_user_count_the_logged_in_user_from_any_address() -> None:
    from asgiref.sync import sync_to_async
    from django.contrib.auth.models import User
    from django.test import Client

    def cookie(name: str) -> dict[str, str]:
        client = Client()
        client.force_login(User.objects.create_user(name, password="pw"))
        return {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}

    ada, bob = await sync_to_async(cookie)("ada"), await sync_to_async(cookie)("bob")
    with override_settings(RAVYN_CHANNELS={"TRUSTED_PROXIES": ["127.0.0.1"]}):
        for ip in ("203.0.113.1", "203.0.113.2"):
            async with connect(per_user, "/per-user", headers={**ada, "X-Forwarded-For": ip}) as ws:
                assert await ws.receive_text() == "ada"
        with pytest.raises(HandshakeRefused):
            async with connect(per_user, "/per-user", headers={**ada, "X-Forwarded-For": "203.0.113.3"}):
                pass
        async with connect(per_user, "/per-user", headers=bob) as ws:
            assert await ws.receive_text() == "bob"
        for _ in range(3):  # anonymous clients are not counted per user
            async with connect(per_user, "/per-user") as ws:
                assert await ws.receive_text() == ""
