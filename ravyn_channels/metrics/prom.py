"""The Prometheus side of ``ravyn_channels.metrics`` (needs prometheus-client: ``pip install ravyn_channels[metrics]``).

``flush()`` moves the plain counters into prometheus-client metrics of the
default registry; ``exposition()`` returns the text format of this process
(or, with ``PROMETHEUS_MULTIPROC_DIR`` set, of every process that wrote there).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

from . import MULTIPROCESS, events, handshakes, latencies, routes

__all__ = ["CONTENT_TYPE_LATEST", "exposition", "flush", "start_flusher"]


CONNECTIONS = Gauge(
    "ravyn_connections_open", "Open websocket connections, by route.", ["route"], multiprocess_mode="livesum"
)
HANDSHAKES = Counter("ravyn_handshakes", "Websocket handshakes by route and result (accepted, refused_<reason>).",
                     ["route", "result"])
RECEIVED = Counter("ravyn_messages_received", "Client messages received, by route.", ["route"])
SENT = Counter("ravyn_messages_sent", "Messages sent to clients (own, broadcast, personal), by route.", ["route"])
BROADCASTS = Counter("ravyn_broadcasts", "Broadcasts sent by ConnectionManagers of this process.")
LATENCY = Histogram(
    "ravyn_broadcast_delivery_seconds",
    "Time from a broadcast's send on one process to its arrival on another (clocks of both hosts).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ROOMS = Gauge("ravyn_rooms", "Rooms (Channels groups) with members on this process.", multiprocess_mode="livesum")
MEMBERS = Gauge("ravyn_room_members", "Room memberships on this process.", multiprocess_mode="livesum")
PRESENCE = Gauge("ravyn_presence_tracked", "Connections this process records in presence.", multiprocess_mode="livesum")
EVENTS = {
    name: Counter(f"ravyn_{name}", help_text)
    for name, help_text in (
        ("layer_errors", "Channel layer failures (sends, receives, group changes)."),
        ("layer_reconnects", "Times the layer receive worked again after failing."),
        ("slow_reader_drops", "Clients dropped because they did not read (SEND_BUFFER_LIMIT)."),
        ("inbox_overflows", "Connections closed with 1013 because their handler did not keep up (INBOX_SIZE)."),
    )
}

_lock = threading.Lock()
_flushed: dict[Any, int] = {}
_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = weakref.WeakKeyDictionary()


def _delta(key: Any, value: int) -> int:
    before = _flushed.get(key, 0)
    _flushed[key] = value
    return value - before


def _hub_sizes() -> tuple[int, int, int]:
    from ..hub import _hubs
    from ..rooms import PRIVATE_PREFIX

    rooms = members = presence = 0
    for _ in range(3):  # the server's loop may change the dicts while a scrape thread reads them
        try:
            rooms = members = presence = 0
            for hubs in list(_hubs.values()):
                for hub in list(hubs.values()):
                    for name, local in list(hub.members.items()):
                        if not name.startswith(PRIVATE_PREFIX):
                            rooms += 1
                            members += len(local)
                    if hub.presence is not None:
                        presence += len(hub.presence.local)
            break
        except RuntimeError:
            continue
    return rooms, members, presence


def flush() -> None:
    """Publish the plain counters of this process into the prometheus-client metrics."""
    with _lock:
        for path, counts in list(routes.items()):
            CONNECTIONS.labels(path).set(counts.open)
            if d := _delta(("in", path), counts.received):
                RECEIVED.labels(path).inc(d)
            if d := _delta(("out", path), counts.sent):
                SENT.labels(path).inc(d)
        for (path, result), value in list(handshakes.items()):
            if d := _delta(("hs", path, result), value):
                HANDSHAKES.labels(path, result).inc(d)
        for name, counter in EVENTS.items():
            if d := _delta(name, events[name]):
                counter.inc(d)
        if d := _delta("broadcasts", events["broadcasts"]):
            BROADCASTS.inc(d)
        while latencies:
            LATENCY.observe(latencies.popleft())
        rooms, members, presence = _hub_sizes()
        ROOMS.set(rooms)
        MEMBERS.set(members)
        PRESENCE.set(presence)


async def _flush_forever(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        flush()


def start_flusher(interval: float = 1.0) -> None:
    """Flush once a second in this event loop (for multiprocess mode: other processes read the files)."""
    loop = asyncio.get_running_loop()
    if loop not in _flushers:
        _flushers[loop] = loop.create_task(_flush_forever(interval))


def exposition() -> bytes:
    """The Prometheus text format: this process, or every process in multiprocess mode."""
    flush()
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
    return bytes(generate_latest(DEFAULT_REGISTRY))
