"""ravyn_channels.metrics in one process: counts parsed from the view's Prometheus output."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import RequestFactory, override_settings
from prometheus_client.parser import text_string_to_metric_families

from ravyn_channels import ConnectionManager, WebSocket, WebSocketException, websocket
from ravyn_channels.management.commands.ws_stats import summary
from ravyn_channels.metrics.urls import metrics_view
from ravyn_channels.testing import HandshakeRefused, connect

pytestmark = pytest.mark.django_db

manager = ConnectionManager("tests.metrics")


@websocket("/m/echo")
async def echo(websocket: WebSocket) -> None:
    await manager.connect(websocket, group="lobby")
    async for text in websocket.iter_text():
        await websocket.send_text(text)


@websocket("/m/closed")
async def closed(websocket: WebSocket) -> None:
    raise WebSocketException(reason="no")


Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


async def scrape() -> Samples:
    response = await sync_to_async(metrics_view)(RequestFactory().get("/metrics/"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    values: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            values[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return values


def value(values: Samples, name: str, **labels: str) -> float:
    return values.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


async def test_connections_handshakes_and_messages_are_counted() -> None:
    before = await scrape()
    async with connect(echo, "/m/echo") as ws:
        for i in range(3):
            await ws.send_text(str(i))
            assert await ws.receive_text() == str(i)
        during = await scrape()
        assert value(during, "ravyn_connections_open", route="/m/echo") == 1
        assert value(during, "ravyn_room_members") >= 1 and value(during, "ravyn_rooms") >= 1
    with pytest.raises(HandshakeRefused):
        async with connect(closed, "/m/closed"):
            pass
    with pytest.raises(HandshakeRefused):
        async with connect(echo, "/m/echo", headers={"Origin": "https://evil.example"}):
            pass
    after = await scrape()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "ravyn_connections_open", route="/m/echo") == 0
    assert grew("ravyn_handshakes_total", route="/m/echo", result="accepted") == 1
    assert grew("ravyn_handshakes_total", route="/m/closed", result="refused_handler") == 1
    assert grew("ravyn_handshakes_total", route="/m/echo", result="refused_request") == 1
    assert grew("ravyn_messages_received_total", route="/m/echo") == 3
    assert grew("ravyn_messages_sent_total", route="/m/echo") == 3
    text = summary(after)
    assert "Open connections:" in text and "refused_handler" in text


async def test_inbox_overflow_is_counted() -> None:
    @websocket("/m/slow", inbox_size=2)
    async def slow(websocket: WebSocket) -> None:
        await websocket.accept()
        import asyncio

        await asyncio.sleep(10)

    before = await scrape()
    async with connect(slow, "/m/slow") as ws:
        for i in range(5):
            await ws.send_text(str(i))
        assert await ws.wait_closed() == 1013
    after = await scrape()
    assert value(after, "ravyn_inbox_overflows_total") - value(before, "ravyn_inbox_overflows_total") == 1


async def test_metrics_off_counts_nothing() -> None:
    with override_settings(RAVYN_CHANNELS={"METRICS": False}):
        before = await scrape()
        async with connect(echo, "/m/echo") as ws:
            await ws.send_text("x")
            await ws.receive_text()
        after = await scrape()
    assert value(after, "ravyn_messages_received_total", route="/m/echo") == value(
        before, "ravyn_messages_received_total", route="/m/echo"
    )


def test_summary_of_nothing() -> None:
    empty: Any = {}
    assert "(none)" in summary(empty)
