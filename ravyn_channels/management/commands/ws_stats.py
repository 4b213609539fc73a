"""``manage.py ws_stats``: a one-shot text summary of ravyn_channels' metrics."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Print a summary of ravyn_channels' metrics: open connections by route, handshakes, messages, "
        "broadcasts and their delivery latency, rooms, presence, layer errors, drops. Reads a running "
        "server's metrics view (--url http://host:port/metrics/) or, with PROMETHEUS_MULTIPROC_DIR set, "
        "every server process's metrics from that directory."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", help="A server's ravyn_channels.metrics.urls view, e.g. http://127.0.0.1:8000/metrics/.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError:
            raise CommandError("ws_stats needs prometheus-client: pip install 'ravyn_channels[metrics]'.") from None
        from ravyn_channels.metrics import MULTIPROCESS

        if options["url"]:
            try:
                with urllib.request.urlopen(options["url"], timeout=10) as response:
                    text = response.read().decode("utf-8")
            except OSError as exc:
                raise CommandError(f"Could not read {options['url']}: {exc}") from None
        elif MULTIPROCESS:
            from ravyn_channels.metrics.prom import exposition

            text = exposition().decode("utf-8")
        else:
            raise CommandError(
                "This command runs in its own process: give --url of a server's metrics view "
                "(path('metrics/', include('ravyn_channels.metrics.urls'))), or set PROMETHEUS_MULTIPROC_DIR "
                "to the directory your server processes share."
            )
        values: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
        self.stdout.write(summary(values))


def _total(values: dict[str, dict[Any, float]], name: str) -> float:
    return sum(values.get(name, {}).values())


def summary(values: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> str:
    """The text summary of parsed samples (``name -> labels -> value``)."""
    lines = ["Open connections:"]
    routes = values.get("ravyn_connections_open", {})
    for labels, value in sorted(routes.items()):
        lines.append(f"  {dict(labels).get('route', '?'):<30} {int(value)}")
    if not routes:
        lines.append("  (none)")
    lines.append(f"  {'total':<30} {int(_total(values, 'ravyn_connections_open'))}")
    lines.append("Handshakes:")
    results: dict[str, float] = defaultdict(float)
    for labels, value in values.get("ravyn_handshakes_total", {}).items():
        results[dict(labels).get("result", "?")] += value
    for result, value in sorted(results.items()):
        lines.append(f"  {result:<30} {int(value)}")
    count = _total(values, "ravyn_broadcast_delivery_seconds_count")
    latency = _total(values, "ravyn_broadcast_delivery_seconds_sum") / count * 1000 if count else 0.0
    for label, name in (
        ("Messages received", "ravyn_messages_received_total"),
        ("Messages sent", "ravyn_messages_sent_total"),
        ("Broadcasts sent", "ravyn_broadcasts_total"),
    ):
        lines.append(f"{label + ':':<32} {int(_total(values, name))}")
    lines.append(f"{'Broadcasts received:':<32} {int(count)} (mean delivery {latency:.2f} ms)")
    for label, name in (
        ("Rooms (per process, summed)", "ravyn_rooms"),
        ("Room members", "ravyn_room_members"),
        ("Presence tracked", "ravyn_presence_tracked"),
        ("Layer errors", "ravyn_layer_errors_total"),
        ("Layer reconnects", "ravyn_layer_reconnects_total"),
        ("Slow-reader drops", "ravyn_slow_reader_drops_total"),
        ("Inbox overflows", "ravyn_inbox_overflows_total"),
    ):
        lines.append(f"{label + ':':<32} {int(_total(values, name))}")
    return "\n".join(lines) + "\n"
