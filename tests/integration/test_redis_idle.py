"""Idle servers on channels-redis with the settings people actually write (issue 20).

``{"hosts": [("127.0.0.1", 6379)]}`` is the form in Channels' docs. With redis-py 8 its default
5 s ``socket_timeout`` cut ``RedisChannelLayer``'s 5 s blocking read: an ERROR every ~5 s,
delivery paused during each retry, and rooms left on the layer after their last member.
Every configuration below runs at once (one daphne each), so the whole test idles only once.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from ravyn_channels.layers import redis_channel_layer
from ravyn_channels.manager import broadcast_event, group_name

from .conftest import REDIS_URL, ROOT, Server, StartServer

pytestmark = [pytest.mark.integration, pytest.mark.redis]

CORE = "channels_redis.core.RedisChannelLayer"
PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"
_url = urlsplit(REDIS_URL)
HOST, PORT = _url.hostname or "127.0.0.1", _url.port or 6379

#: name -> (BACKEND, hosts); the prefix is added per run.
CONFIGS: dict[str, tuple[str, list[Any]]] = {
    "core-tuple": (CORE, [(HOST, PORT)]),
    "core-url": (CORE, [REDIS_URL]),
    "core-dict": (CORE, [{"host": HOST, "port": PORT}]),
    "pubsub-tuple": (PUBSUB, [(HOST, PORT)]),
    # A timeout we must not override (check W011): our reader treats its idle timeouts as benign.
    "core-timeout-3s": (CORE, [{"address": REDIS_URL, "socket_timeout": 3}]),
}
HELPERS = {"helper-core": False, "helper-pubsub": True}

SETTINGS = """\
SECRET_KEY = "x"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "channels", "ravyn_channels"]
DATABASES = {}
ROOT_URLCONF = "ravyn_channels.standalone"
CHANNEL_LAYERS = {"default": %(layer)r}
RAVYN_CHANNELS = {"AUTODISCOVER": []}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"lvl": {"format": "%%(levelname)s %%(name)s %%(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "lvl"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"ravyn_channels": {"level": "DEBUG"}},
}
"""

IDLE_BEFORE_LEAVING = 16.0  # a member idle for >= 15 s, then it closes
IDLE_SERVER = 30.0  # the server's log is read after this long with nothing happening


@dataclass
class Run:
    name: str
    layer: dict[str, Any]
    server: Server
    prefix: str
    clients: dict[str, Any] = field(default_factory=dict)


def start(tmp_path: Path, start_server: StartServer, name: str, layer: dict[str, Any]) -> Run:
    prefix = f"rc-test-{uuid.uuid4().hex[:8]}"
    layer = {**layer, "CONFIG": {**layer["CONFIG"], "prefix": prefix}}
    directory = tmp_path / name
    directory.mkdir()
    (directory / "idle_settings.py").write_text(SETTINGS % {"layer": layer})
    env = {"PYTHONPATH": f"{directory}{os.pathsep}{ROOT}"}
    server = start_server("tests.integration.apps.rooms:app", settings="idle_settings", env=env)
    return Run(name, layer, server, prefix)


def layer_members(run: Run, room: str) -> int:
    """How many channels the layer holds in ``room``'s group (zset members, or pub/sub subscribers)."""
    group = group_name(room, "tests.rooms")
    client = redis.Redis(host=HOST, port=PORT)
    try:
        if run.layer["BACKEND"] == CORE:
            return int(client.zcard(f"{run.prefix}:group:{group}"))
        channel = f"{run.prefix}__group__{group}"
        return int(dict(client.pubsub_numsub(channel))[channel.encode()])
    finally:
        client.close()


def sender(run: Run) -> Any:
    """A layer in the test process with the same Redis and prefix (what a worker's broadcast_sync uses)."""
    from django.utils.module_loading import import_string

    config = dict(run.layer["CONFIG"])
    config["hosts"] = [{"address": REDIS_URL, "socket_timeout": None}]
    return import_string(run.layer["BACKEND"])(**config)


async def delays(run: Run, count: int = 3) -> list[float]:
    """Broadcast ``count`` times, half a second apart, through the layer; how long each took to arrive."""
    layer = sender(run)
    group = group_name("quiet", "tests.rooms")
    client = run.clients["quiet"]
    took = []
    try:
        for n in range(count):
            sent = time.monotonic()
            await layer.group_send(group, broadcast_event(f"probe {n}", group))
            assert await asyncio.wait_for(client.recv(), 10) == f"probe {n}"
            took.append(time.monotonic() - sent)
            await asyncio.sleep(0.5)
    finally:
        await layer.flush() if run.layer["BACKEND"] == PUBSUB else await layer.close_pools()
    return took


async def test_idle_servers_log_nothing_deliver_at_once_and_leave_no_membership(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    layers = {name: {"BACKEND": backend, "CONFIG": {"hosts": hosts}} for name, (backend, hosts) in CONFIGS.items()}
    layers.update({name: redis_channel_layer(REDIS_URL, pubsub=pubsub) for name, pubsub in HELPERS.items()})
    starting = asyncio.Semaphore(2)  # two at a time: seven at once can miss the 20 s start bound on a busy machine

    async def started(name: str, layer: dict[str, Any]) -> Run:
        async with starting:
            return await asyncio.to_thread(start, tmp_path, start_server, name, layer)

    runs = list(await asyncio.gather(*(started(name, layer) for name, layer in layers.items())))
    began = time.monotonic()
    for run in runs:
        for room in ("idle", "quiet"):
            run.clients[room] = await ws_connect(f"{run.server.ws}/room/{room}").__aenter__()
            await run.clients[room].send("id")
            await asyncio.wait_for(run.clients[room].recv(), 5)
    for run in runs:
        assert layer_members(run, "idle") == 1, run.name
    await asyncio.sleep(IDLE_BEFORE_LEAVING)
    for run in runs:
        await run.clients.pop("idle").close()
    await asyncio.sleep(1.0)
    left_behind = {run.name: layer_members(run, "idle") for run in runs}
    await asyncio.sleep(max(0.0, IDLE_SERVER - (time.monotonic() - began)))
    errors = {run.name: [line for line in run.server.log().splitlines() if "ERROR" in line or "Traceback" in line]
              for run in runs}
    took = dict(zip([r.name for r in runs], await asyncio.gather(*(delays(run) for run in runs)), strict=True))
    for run in runs:
        await run.clients.pop("quiet").close()
    print({name: f"max {max(t):.3f}s" for name, t in took.items()})
    assert left_behind == dict.fromkeys(left_behind, 0)
    # The timeout we could not remove happened, and was taken for what it is.
    [timeout_run] = [run for run in runs if run.name == "core-timeout-3s"]
    assert "Channel layer read timed out while idle" in timeout_run.server.log()
    assert errors == {run.name: [] for run in runs}
    assert {name: max(t) < 2.0 for name, t in took.items()} == dict.fromkeys(took, True), took
