"""Metrics from real daphne processes on Redis, in prometheus-client's multiprocess mode,
read through the Django view and `manage.py ws_stats`, parsed with prometheus_client.parser."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ROOT, StartServer, server_env, write_redis_settings

pytestmark = [pytest.mark.integration, pytest.mark.redis]

URLS = """
from django.urls import include, path
urlpatterns = [path("metrics/", include("ravyn_channels.metrics.urls"))]
"""


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return values


async def test_two_processes_in_multiprocess_mode(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    write_redis_settings(tmp_path)
    settings_file = tmp_path / "redis_settings.py"
    settings_file.write_text(settings_file.read_text() + 'ROOT_URLCONF = "metrics_urls"\n')
    (tmp_path / "metrics_urls.py").write_text(URLS)
    shared = tmp_path / "prom"
    shared.mkdir()
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    a = start_server("tests.integration.apps.rooms:app", settings="redis_settings", env=env)
    b = start_server("tests.integration.apps.rooms:app", settings="redis_settings", env=env)
    async with ws_connect(f"{a.ws}/room/red") as on_a, ws_connect(f"{b.ws}/room/red") as on_b, ws_connect(
        f"{b.ws}/room/blue"
    ) as blue:
        await asyncio.sleep(0.3)
        for i in range(5):
            await on_a.send(f"say:{i}")
            assert await asyncio.wait_for(on_b.recv(), 5) == f"red: {i}"
            assert await asyncio.wait_for(on_a.recv(), 5) == f"red: {i}"
        await asyncio.sleep(1.5)  # each process flushes its counters to the directory once a second
        values = await asyncio.to_thread(scrape, f"{a.http}/metrics/")
        # Process A answers for both: three open connections on /room/{room}, two on B.
        assert values["ravyn_connections_open"][(("route", "/room/{room}"),)] == 3
        assert values["ravyn_handshakes_total"][(("result", "accepted"), ("route", "/room/{room}"))] == 3
        assert values["ravyn_messages_received_total"][(("route", "/room/{room}"),)] == 5
        assert values["ravyn_messages_sent_total"][(("route", "/room/{room}"),)] == 10
        assert values["ravyn_broadcasts_total"][()] == 5
        # B received A's five broadcasts through Redis: their delivery latency is in the histogram.
        assert values["ravyn_broadcast_delivery_seconds_count"][()] == 5
        assert values["ravyn_broadcast_delivery_seconds_bucket"][(("le", "+Inf"),)] == 5
        assert values["ravyn_room_members"][()] >= 3
        # ws_stats, from another process, reads the same directory.
        env_stats = server_env("redis_settings", PROMETHEUS_MULTIPROC_DIR=str(shared))
        env_stats["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env_stats['PYTHONPATH']}"
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, str(ROOT / "manage.py"), "ws_stats"],
            env=env_stats, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "/room/{room}" in done.stdout and "Broadcasts received:             5" in done.stdout
        print(done.stdout)
        del blue
    # ws_stats --url: one process's view.
    env_url = server_env("redis_settings")
    env_url["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env_url['PYTHONPATH']}"
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(ROOT / "manage.py"), "ws_stats", "--url", f"{b.http}/metrics/"],
        env=env_url, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Open connections:" in done.stdout


def test_ws_stats_without_a_source_says_what_to_give(tmp_path: Path) -> None:
    write_redis_settings(tmp_path)
    env = server_env("redis_settings")
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "ws_stats"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "--url" in done.stderr and "PROMETHEUS_MULTIPROC_DIR" in done.stderr
