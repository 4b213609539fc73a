"""Django settings for the benchmark servers (``DJANGO_SETTINGS_MODULE=bench.apps.settings``).

The orchestrator chooses the layer and the variant through the environment:
``BENCH_LAYER`` is ``memory`` (InMemoryChannelLayer), ``redis`` (channels-redis
``RedisChannelLayer``) or ``pubsub`` (``RedisPubSubChannelLayer``); ``BENCH_APP``
says which variant this process serves (the hand-written ``ref`` gets the plain
channels-redis dict a user would write, the others ``redis_channel_layer()``).
"""

import os
from typing import Any

from ravyn_channels.layers import redis_channel_layer

SECRET_KEY = "bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "channels",
    "ravyn_channels",
]
DATABASES: dict[str, dict[str, str]] = {}
ROOT_URLCONF = "ravyn_channels.standalone"
USE_TZ = True
_layer = os.environ.get("BENCH_LAYER", "memory")
_app = os.environ.get("BENCH_APP", "ravyn")

# Metrics (prometheus-client) on for the ``metrics`` variant only; off (the default) for the others.
RAVYN_CHANNELS: dict[str, Any] = {"AUTODISCOVER": [], "METRICS": _app == "metrics"}
_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
_prefix = os.environ.get("BENCH_PREFIX", "bench")

CHANNEL_LAYERS: dict[str, Any]
if _layer == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
elif _layer in ("redis", "pubsub"):
    if _app == "ref":
        # Written by hand, as channels-redis documents it. The host entry carries
        # socket_timeout=None: with redis-py 8 the bare URL loses messages after 5 s
        # idle (channels_redis#422), and the baseline must not be a broken one.
        backend = "core.RedisChannelLayer" if _layer == "redis" else "pubsub.RedisPubSubChannelLayer"
        host: dict[str, Any] = {"address": _url, "socket_timeout": None}
        CHANNEL_LAYERS = {
            "default": {"BACKEND": f"channels_redis.{backend}", "CONFIG": {"hosts": [host], "prefix": _prefix}}
        }
    else:
        CHANNEL_LAYERS = {"default": redis_channel_layer(_url, pubsub=_layer == "pubsub", prefix=_prefix)}
else:
    raise ValueError(f"BENCH_LAYER must be memory, redis or pubsub, got {_layer!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # channels-redis says at INFO when a group_send drops messages over a channel's capacity;
    # the scale run counts those lines in the server logs.
    # ravyn_channels' daphne adapter says at INFO when it closes a connection for HANDSHAKE_TIMEOUT;
    # the reconnect storm counts those lines.
    "loggers": {"channels_redis": {"level": "INFO"}, "ravyn_channels.servers": {"level": "INFO"}},
}
