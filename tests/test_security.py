"""Secure defaults: Origin against ALLOWED_HOSTS (or the route's/settings' origins), inbox size."""

from __future__ import annotations

import asyncio
import logging

import pytest
from django.test import override_settings

from ravyn_channels import WebSocket, websocket
from ravyn_channels.testing import HandshakeRefused, connect

pytestmark = pytest.mark.django_db


@websocket("/sec/open")
async def open_route(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("in")


@websocket("/sec/app-only", origins=["https://app.example"])
async def app_only(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("in")


async def admitted(route: object, path: str, origin: str | None) -> bool:
    headers = {"origin": origin} if origin else None
    try:
        async with connect(route, path, headers=headers) as ws:
            return await ws.receive_text() == "in"
    except HandshakeRefused:
        return False


async def test_origin_must_match_allowed_hosts(rc_logs: pytest.LogCaptureFixture) -> None:
    assert await admitted(open_route, "/sec/open", "http://localhost:8000")
    assert not await admitted(open_route, "/sec/open", "https://evil.example")
    [line] = [r for r in rc_logs.records if "evil.example" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert "Origin 'https://evil.example' is not allowed" in line.getMessage()


async def test_missing_origin_is_allowed_unless_required() -> None:
    assert await admitted(open_route, "/sec/open", None)
    with override_settings(RAVYN_CHANNELS={"REQUIRE_ORIGIN": True}):
        assert not await admitted(open_route, "/sec/open", None)
        assert await admitted(open_route, "/sec/open", "http://127.0.0.1")


async def test_route_origins_replace_allowed_hosts() -> None:
    assert await admitted(app_only, "/sec/app-only", "https://app.example")
    assert not await admitted(app_only, "/sec/app-only", "http://localhost")
    assert not await admitted(app_only, "/sec/app-only", "http://app.example")  # scheme counts


async def test_settings_origins_replace_allowed_hosts() -> None:
    # Channels' pattern syntax: a leading dot matches the domain and its subdomains
    with override_settings(RAVYN_CHANNELS={"ORIGINS": ["https://.example.org"]}):
        assert await admitted(open_route, "/sec/open", "https://chat.example.org")
        assert not await admitted(open_route, "/sec/open", "http://localhost")
        assert await admitted(app_only, "/sec/app-only", "https://app.example")  # the route's own still win


def test_origins_must_be_a_list() -> None:
    async def h(websocket: WebSocket) -> None: ...

    with pytest.raises(TypeError, match=r"origins= takes a list of patterns, e\.g\. origins=\['https://a\.example'\]"):
        websocket("/sec/str", origins="https://a.example")(h)


@override_settings(RAVYN_CHANNELS={"INBOX_SIZE": 2})
async def test_inbox_size_setting() -> None:
    release = asyncio.Event()

    @websocket("/sec/slow")
    async def slow(websocket: WebSocket) -> None:
        await websocket.accept()
        await release.wait()

    async with connect(slow, "/sec/slow") as ws:
        for i in range(3):
            await ws.send_text(str(i))
        assert await ws.wait_closed() == 1013
        release.set()
