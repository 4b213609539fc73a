"""Django system checks for ravyn_channels (``python manage.py check``).

===================== =====================================================================
``E001``              two routes serve the same path (the first declared gets every connection)
``E002``              a registered handler is not ``async def``
``E003``              a handler parameter cannot be filled in this configuration
``E004``              a ``RAVYN_CHANNELS`` value has the wrong type or range
``W001``              an unknown ``RAVYN_CHANNELS`` key (ignored)
``W002``              no channel layer (``ConnectionManager`` and ``ws_send`` need one)
``W003``              the in-memory channel layer while ``DEBUG`` is off (one process only)
``W020``              ``ALLOWED_HOSTS`` has ``"*"`` and ``ORIGINS`` is not set: any site's page may connect
``E020``              the same under ``check --deploy``
``E021``              an ``ORIGINS`` entry that is not an origin pattern
``E022``              a ``TRUSTED_PROXIES`` entry that is not an IP address or network
``E040``              ``HANDSHAKE_TIMEOUT`` is not ``None`` or a positive number of seconds
``E041``              ``MAX_MESSAGE_FRAGMENTS`` is not ``None`` or a positive int
``W040``              ``check --deploy``: the open-file limit (``ulimit -n``) is below 4096
``W010``              ``RedisChannelLayer`` hosts without ``socket_timeout`` (adjusted at startup)
``W011``              ``RedisChannelLayer`` hosts with a ``socket_timeout`` of 5 s or less (cannot be made safe)
``E060``, ``W060``    topic sockets: see ``ravyn_channels.topics.checks``
``W030``              ``TOKEN_MAX_AGE`` over an hour (a copied token connects that long)
``W032``              ``TOKEN_MAX_AGE`` under 10 s (tokens refused at random, sockets closed at once)
``W031``              ``MAX_ROOMS_PER_CONNECTION`` is ``None`` (one client may join rooms without bound)
``E090``              a manager with ``history=`` on a layer that is neither channels-redis nor in-memory
``E100``              ``RATE_LIMITS`` is not a dict of known keys with valid rates, policy and close code
``W100``              ``check --deploy``: a per-IP handshake limit without ``TRUSTED_PROXIES`` (behind a
                      proxy every client would share the proxy's bucket)
===================== =====================================================================

``@websocket`` already refuses a sync handler or an unfillable parameter at
import; E002 and E003 re-verify the registry as served (an endpoint replaced
after decoration, a ``user`` that must be logged in while no auth middleware
runs). Only checks see every route together, so only they find duplicates
across modules (E001). Each function takes ``routes=`` for tests.
"""

from __future__ import annotations

from .layers import check_channel_layer, check_history_layers, check_layer_timeouts
from .routes import _routes as _routes  # tests import it from here
from .routes import check_routes, check_topics
from .settings import check_limits, check_rate_limits, check_rate_limits_deploy, check_settings
from .transport import check_open_files, check_origins, check_origins_deploy, check_transport_settings

__all__ = [
    "check_channel_layer",
    "check_history_layers",
    "check_layer_timeouts",
    "check_limits",
    "check_open_files",
    "check_origins",
    "check_origins_deploy",
    "check_rate_limits",
    "check_rate_limits_deploy",
    "check_routes",
    "check_settings",
    "check_topics",
    "check_transport_settings",
]
