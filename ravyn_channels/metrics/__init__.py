"""Metrics: plain counters on the hot path, published with prometheus-client (the ``metrics`` extra).

The consumer, the hub and the daphne adapter count into plain Python ints
(one attribute increment per message); ``ravyn_channels.metrics.prom`` turns them
into Prometheus metrics at each scrape and once a second in every server process
(so prometheus-client's multiprocess mode sees them too). Without
prometheus-client installed, or with ``RAVYN_CHANNELS["METRICS"] = False``,
nothing is counted.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import time
from typing import Any

from ..conf import get_settings

__all__ = ["RouteCounts", "enabled"]


class RouteCounts:
    """Messages of one route's connections in this process."""

    __slots__ = ("open", "received", "sent")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.open = 0


routes: dict[str, RouteCounts] = {}
#: (route, result) -> handshakes; result: "accepted" or "refused_<reason>".
handshakes: collections.Counter[tuple[str, str]] = collections.Counter()
#: Process-wide events: layer_errors, layer_reconnects, slow_reader_drops, inbox_overflows, broadcasts.
events: collections.Counter[str] = collections.Counter()
#: Seconds from a broadcast's ``group_send`` to its arrival at this process (flushed into a histogram).
latencies: collections.deque[float] = collections.deque(maxlen=100_000)

_available = importlib.util.find_spec("prometheus_client") is not None
#: prometheus-client's multiprocess mode: each process flushes its counters to the directory once a second.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir"))
_enabled: tuple[object, bool] | None = None


def enabled() -> bool:
    """Whether metrics are counted: prometheus-client is installed and ``METRICS`` is not ``False``."""
    global _enabled
    current = get_settings()
    if _enabled is None or _enabled[0] is not current:
        _enabled = (current, _available and current.METRICS is not False)
    return _enabled[1]


def route_counts(path: str) -> RouteCounts | None:
    """The counters of the route ``path`` (``None`` when metrics are off)."""
    if not enabled():
        return None
    if MULTIPROCESS:
        from .prom import start_flusher

        start_flusher()
    counts = routes.get(path)
    if counts is None:
        counts = routes[path] = RouteCounts()
    return counts


def handshake(path: str, result: str) -> None:
    """Count a handshake of ``path``: ``"accepted"`` or ``"refused_<reason>"``."""
    if enabled():
        handshakes[(path, result)] += 1


def event(name: str) -> None:
    """Count a process-wide event (``layer_errors``, ``slow_reader_drops``, ...)."""
    if enabled():
        events[name] += 1


def stamp(event_dict: dict[str, Any]) -> dict[str, Any]:
    """Add the send time to a broadcast event (for the delivery latency) and count the broadcast."""
    if enabled():
        events["broadcasts"] += 1
        event_dict["sent_at"] = time.time()
    return event_dict


def arrived(event_dict: dict[str, Any]) -> None:
    """A broadcast from another process arrived: record how long it travelled."""
    sent_at = event_dict.get("sent_at")
    if isinstance(sent_at, float) and enabled():
        latencies.append(max(0.0, time.time() - sent_at))
