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

import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import _raw, get_settings, unknown_keys
from .params import REQUIRED

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

_CONVERTER_NAME = re.compile(r"<([^:<>]+):[^<>]+>")


def _routes(app_configs: Iterable[Any] | None, routes: Iterable[Any] | None) -> list[Any]:
    from .routing import registered_routes

    chosen = registered_routes() if routes is None else list(routes)
    if app_configs is None:
        return chosen
    names = {config.name for config in app_configs}
    prefixes = tuple(f"{name}." for name in names)
    modules = [(r, str(getattr(r.function, "__module__", ""))) for r in chosen]  # r.function: partials unwrapped
    return [r for r, module in modules if module in names or module.startswith(prefixes)]


def _shape(route: Any) -> str:
    """A route's path with parameter names dropped: ``/a/{x}`` and ``/a/{y}`` collide."""
    return str(_CONVERTER_NAME.sub(r"<\1>", route.route))


def _auth_middleware_runs() -> bool:
    from django.apps import apps

    return bool(
        apps.is_installed("django.contrib.sessions") and apps.is_installed("django.contrib.auth") and settings.DATABASES
    )


@register("ravyn_channels")
def check_routes(app_configs: Any = None, routes: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E001 duplicate paths, E002 handlers that are not async, E003 parameters that cannot be filled."""
    from .signatures import plan_for

    messages: list[CheckMessage] = []
    everything = _routes(None, routes)
    selected = {id(r) for r in _routes(app_configs, everything)}
    first: dict[str, Any] = {}
    for route in everything:
        shape = _shape(route)
        other = first.setdefault(shape, route)
        if other is not route and (id(route) in selected or id(other) in selected):
            messages.append(
                Error(
                    f"Routes {other.qualname} and {route.qualname} both serve {route.path!r}; "
                    f"{other.qualname} (declared first) gets every connection.",
                    hint="Give one of them another path, or remove one. The same module imported under "
                    "two names (e.g. 'sockets' and 'chat.sockets') declares its routes twice.",
                    obj=route,
                    id="ravyn_channels.E001",
                )
            )
    auth_runs = _auth_middleware_runs()
    for route in everything:
        if id(route) not in selected:
            continue
        if not inspect.iscoroutinefunction(route.endpoint):
            messages.append(
                Error(
                    f"The handler of {route.path!r} ({route.qualname}) is not an 'async def' function.",
                    hint="Write the handler as 'async def'; run sync work inside it with "
                    "channels.db.database_sync_to_async. Do not replace route.endpoint after decoration.",
                    obj=route,
                    id="ravyn_channels.E002",
                )
            )
            continue
        try:
            plan = plan_for(route.endpoint, route.param_types)
        except TypeError as exc:
            messages.append(
                Error(
                    str(exc),
                    hint="Fix the handler's signature as the message says.",
                    obj=route,
                    id="ravyn_channels.E003",
                )
            )
            continue
        if not auth_runs:
            for owner, slot in plan.walk():
                if slot.kind == "user" and slot.user_required and slot.default is REQUIRED:
                    messages.append(
                        Error(
                            f"{owner}: parameter {slot.name!r} needs a logged-in user, but no "
                            "authentication runs, so every connection would be refused.",
                            hint="Add 'django.contrib.sessions' and 'django.contrib.auth' to INSTALLED_APPS "
                            "with a database (routes are then wrapped in Channels' AuthMiddlewareStack), "
                            "or take the user from a dependency, e.g. user=Inject(ravyn_channels.auth.token_user).",
                            obj=route,
                            id="ravyn_channels.E003",
                        )
                    )
    return messages


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _non_negative_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _str_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


_VALID: dict[str, tuple[Callable[[Any], bool], str]] = {
    "AUTODISCOVER": (_str_list, "a list of module names, e.g. ['sockets']"),
    "INBOX_SIZE": (_positive_int, "a positive int"),
    "INBOX_OVERFLOW": (lambda v: v in ("close", "backpressure"), "'close' or 'backpressure'"),
    "MAX_MESSAGE_SIZE": (_positive_int, "a positive int (bytes)"),
    "ORIGINS": (lambda v: v is None or _str_list(v), "None or a list of origin patterns"),
    "REQUIRE_ORIGIN": (lambda v: isinstance(v, bool), "True or False"),
    "TRUSTED_PROXIES": (_str_list, "a list of IP addresses or networks, e.g. ['10.0.0.1', '10.0.0.0/8']"),
    "DISCONNECT_GRACE": (_non_negative_number, "a number of seconds >= 0"),
    "CLOSE_TIMEOUT": (_non_negative_number, "a number of seconds >= 0"),
    "CHANNEL_LAYER": (lambda v: isinstance(v, str), "a CHANNEL_LAYERS alias (str)"),
    "PATCH_DAPHNE": (lambda v: isinstance(v, bool), "True or False"),
    "TOKEN_MAX_AGE": (_non_negative_number, "a number of seconds >= 0"),
    "TOKEN_REVOKE_ON_LOGOUT": (lambda v: isinstance(v, bool), "True or False"),
    "CLOSE_ON_TOKEN_REVOKE": (lambda v: isinstance(v, bool), "True or False"),
    "CLOSE_ON_TOKEN_EXPIRY": (lambda v: isinstance(v, bool), "True or False"),
    "SEND_BUFFER_LIMIT": (lambda v: v is None or _positive_int(v), "None or a positive int (bytes)"),
    "RECEIVE_QUEUE_LIMIT": (_positive_int, "a positive int"),
    "LOOP_BLOCK_WARNING": (lambda v: v is None or _non_negative_number(v), "None or a number of seconds >= 0"),
    "TOPICS_HEARTBEAT_TIMEOUT": (lambda v: v is None or _non_negative_number(v), "None or a number of seconds >= 0"),
    "TOPICS_MAX_PER_SOCKET": (_positive_int, "a positive int"),
    "MAX_ROOMS_PER_CONNECTION": (lambda v: v is None or _positive_int(v), "None or a positive int, e.g. 100"),
    "CLOSE_ON_LOGOUT": (lambda v: isinstance(v, bool), "True or False"),
    "METRICS": (lambda v: v is None or isinstance(v, bool), "None, True or False"),
    "PRESENCE_TTL": (
        lambda v: _non_negative_number(v) and v > 0,
        "a positive number of seconds, e.g. 30 (crashed processes' connections leave presence within it)",
    ),
}


@register("ravyn_channels")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W001 unknown keys and E004 invalid values in ``RAVYN_CHANNELS``."""
    try:
        raw = _raw()
    except TypeError as exc:
        return [Error(str(exc), hint="See the README's Settings table.", id="ravyn_channels.E004")]
    messages: list[CheckMessage] = [
        Warning(
            f"RAVYN_CHANNELS has an unknown key {key!r}; it is ignored.",
            hint="See the README's Settings table for the keys ravyn_channels reads.",
            id="ravyn_channels.W001",
        )
        for key in unknown_keys()
    ]
    for key, value in raw.items():
        rule = _VALID.get(key)
        if rule is not None and not rule[0](value):
            messages.append(
                Error(
                    f"RAVYN_CHANNELS[{key!r}] is {value!r}; it must be {rule[1]}.",
                    hint="See the README's Settings table.",
                    id="ravyn_channels.E004",
                )
            )
    return messages


@register("ravyn_channels")
def check_channel_layer(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W002 no channel layer, W003 the in-memory layer while ``DEBUG`` is off."""
    try:
        alias = get_settings().CHANNEL_LAYER
    except TypeError:  # RAVYN_CHANNELS is not a dict: E004 says so
        alias = "default"
    if not isinstance(alias, str):
        alias = "default"
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    config = layers.get(alias)
    if config is None:
        return [
            Warning(
                f"CHANNEL_LAYERS has no {alias!r} layer: ConnectionManager rooms and "
                "'manage.py ws_send' will fail (handlers without them work).",
                hint="Add CHANNEL_LAYERS = {'default': ravyn_channels.layers.redis_channel_layer(REDIS_URL)}, "
                "or {'default': {'BACKEND': 'channels.layers.InMemoryChannelLayer'}} for one process.",
                id="ravyn_channels.W002",
            )
        ]
    backend = str(config.get("BACKEND", "")) if isinstance(config, dict) else ""
    if backend.endswith("InMemoryChannelLayer") and not settings.DEBUG:
        return [
            Warning(
                f"CHANNEL_LAYERS[{alias!r}] is the in-memory layer while DEBUG is False: broadcasts reach "
                "only the clients of the process that sends them, and 'manage.py ws_send' reaches none.",
                hint="Use channels-redis in production: CHANNEL_LAYERS = "
                "{'default': ravyn_channels.layers.redis_channel_layer(REDIS_URL)}. "
                "Ignore this for a single-process deployment (SILENCED_SYSTEM_CHECKS).",
                id="ravyn_channels.W003",
            )
        ]
    return []


def _wildcard_hosts_message(app_configs: Any, routes: Iterable[Any] | None, deploy: bool) -> list[CheckMessage]:
    try:
        if get_settings().ORIGINS is not None:
            return []  # an explicit choice, even ["*"]
    except TypeError:  # RAVYN_CHANNELS is not a dict: E004 says so
        return []
    if "*" not in settings.ALLOWED_HOSTS:
        return []
    exposed = [r for r in _routes(app_configs, routes) if r.origins is None]
    if not exposed:
        return []  # every route names its own origins
    text = (
        "ALLOWED_HOSTS contains '*' and RAVYN_CHANNELS['ORIGINS'] is not set, so websocket handshakes from "
        f"any Origin are accepted ({len(exposed)} route(s), e.g. {exposed[0].path!r}): a page on any site "
        "can open a websocket with a visitor's session cookie and act as that user."
    )
    hint = (
        "Set RAVYN_CHANNELS['ORIGINS'] to the origins of your pages, e.g. ['https://example.com'] "
        "(or ['*'] to accept every origin knowingly), or list your hosts in ALLOWED_HOSTS."
    )
    if deploy:
        return [Error(text, hint=hint, id="ravyn_channels.E020")]
    return [Warning(text, hint=hint, id="ravyn_channels.W020")]


@register("ravyn_channels", Tags.security)
def check_origins(app_configs: Any = None, routes: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """W020 ``ALLOWED_HOSTS = ["*"]`` without ``ORIGINS``; E021 bad ``ORIGINS``; E022 bad ``TRUSTED_PROXIES``."""
    from .origins import parse_pattern
    from .proxies import parse_networks

    messages = _wildcard_hosts_message(app_configs, routes, deploy=False)
    try:
        raw = _raw()
    except TypeError:
        return messages
    origins = raw.get("ORIGINS")
    for pattern in origins if isinstance(origins, (list, tuple)) and _str_list(origins) else ():
        try:
            parse_pattern(pattern)
        except ValueError as exc:
            messages.append(
                Error(
                    f"RAVYN_CHANNELS['ORIGINS']: {exc}; this entry never matches.",
                    hint="Write 'https://example.com', 'http://localhost:8000', 'example.com' (any scheme and "
                    "port), '.example.com' (and its subdomains) or '*'.",
                    id="ravyn_channels.E021",
                )
            )
    proxies = raw.get("TRUSTED_PROXIES")
    if isinstance(proxies, (list, tuple)) and _str_list(proxies):
        try:
            parse_networks(proxies)
        except ValueError as exc:
            messages.append(
                Error(
                    f"RAVYN_CHANNELS['TRUSTED_PROXIES']: {exc}; no proxy is trusted until it is fixed.",
                    hint="List the addresses your reverse proxies connect from, e.g. ['127.0.0.1', '10.0.0.0/8'].",
                    id="ravyn_channels.E022",
                )
            )
    return messages


@register("ravyn_channels")
def check_transport_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E040 an invalid ``HANDSHAKE_TIMEOUT``, E041 an invalid ``MAX_MESSAGE_FRAGMENTS``."""
    try:
        raw = _raw()
    except TypeError:  # E004 says so
        return []
    messages: list[CheckMessage] = []
    if "HANDSHAKE_TIMEOUT" in raw:
        value = raw["HANDSHAKE_TIMEOUT"]
        if not (value is None or (_non_negative_number(value) and value > 0)):
            messages.append(
                Error(
                    f"RAVYN_CHANNELS['HANDSHAKE_TIMEOUT'] is {value!r}; it must be None or a positive "
                    "number of seconds.",
                    hint="A few seconds (the default is 5.0): a client that has not sent its whole "
                    "handshake by then is disconnected. None turns the deadline off.",
                    id="ravyn_channels.E040",
                )
            )
    if "MAX_MESSAGE_FRAGMENTS" in raw:
        value = raw["MAX_MESSAGE_FRAGMENTS"]
        if not (value is None or _positive_int(value)):
            messages.append(
                Error(
                    f"RAVYN_CHANNELS['MAX_MESSAGE_FRAGMENTS'] is {value!r}; it must be None or a positive int.",
                    hint="None (the default) allows one fragment per 64 bytes of MAX_MESSAGE_SIZE, at "
                    "least 1024; a message in more frames closes with 1009.",
                    id="ravyn_channels.E041",
                )
            )
    return messages


@register("ravyn_channels", Tags.security, deploy=True)
def check_origins_deploy(
    app_configs: Any = None, routes: Iterable[Any] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E020 (``check --deploy``): ``ALLOWED_HOSTS = ["*"]`` without ``ORIGINS``."""
    return _wildcard_hosts_message(app_configs, routes, deploy=True)


#: Open files below which ``check --deploy`` warns (W040).
MIN_OPEN_FILES = 4096


@register("ravyn_channels", deploy=True)
def check_open_files(app_configs: Any = None, limit: int | None = None, **kwargs: Any) -> list[CheckMessage]:
    """W040 (``--deploy``): this process may open fewer than 4096 files; ``limit=`` for tests."""
    if limit is None:
        try:
            import resource
        except ImportError:  # not on Unix
            return []
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if limit == resource.RLIM_INFINITY:
            return []
    if limit >= MIN_OPEN_FILES:
        return []
    return [
        Warning(
            f"This process may open only {limit} files (ulimit -n): every websocket, and every "
            "connection still sending its handshake, holds one, so the server stops accepting "
            f"connections at about {limit}.",
            hint="Raise it where the server starts: 'ulimit -n 65536' in its shell, LimitNOFILE=65536 "
            "in a systemd unit, '--ulimit nofile=65536' for Docker. See the README's Reliability section.",
            id="ravyn_channels.W040",
        )
    ]
_SAFE_HOSTS = (
    "{'BACKEND': 'channels_redis.core.RedisChannelLayer', 'CONFIG': {'hosts': "
    "[{'address': 'redis://127.0.0.1:6379/0', 'socket_timeout': None}]}} "
    "(what ravyn_channels.layers.redis_channel_layer(url, pubsub=False) writes)"
)


@register("ravyn_channels")
def check_layer_timeouts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W010 ``RedisChannelLayer`` hosts we adjust, W011 hosts whose timeout cuts the layer's blocking read."""
    from .layers import timeout_problems

    messages: list[CheckMessage] = []
    for alias, config in (getattr(settings, "CHANNEL_LAYERS", None) or {}).items():
        adjust, unsafe = timeout_problems(config)
        if adjust:
            messages.append(
                Warning(
                    f"CHANNEL_LAYERS[{alias!r}] is a RedisChannelLayer whose hosts {adjust} leave socket_timeout to "
                    "redis-py, whose default since redis-py 8 (5 s) cuts the layer's 5 s blocking read: every idle "
                    "receive would fail and plain consumers would be closed with 1011. ravyn_channels sets "
                    "socket_timeout=None on these hosts when the process starts.",
                    hint=f"Say it in your settings to silence this: give each host as a dict with "
                    f"'socket_timeout': None, e.g. {_SAFE_HOSTS}.",
                    id="ravyn_channels.W010",
                )
            )
        for index, value in unsafe:
            messages.append(
                Warning(
                    f"CHANNEL_LAYERS[{alias!r}] host {index} sets socket_timeout={value!r}, not more than the "
                    "RedisChannelLayer's 5 s blocking read: idle reads time out every few seconds (a message popped "
                    "at that moment can be lost, and plain consumers are closed with 1011). ravyn_channels keeps "
                    "your value; its own reader treats these timeouts as benign.",
                    hint=f"Use 'socket_timeout': None (TCP keepalive still detects dead connections), in the host "
                    f"dict and not in the URL's query string, e.g. {_SAFE_HOSTS}.",
                    id="ravyn_channels.W011",
                )
            )
    return messages


@register("ravyn_channels")
def check_topics(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E060/W060: topic sockets (``ravyn_channels.topics``), checked only when some are declared."""
    from .topics.checks import check_topics as check

    return check(app_configs, **kwargs)


#: Longest ``TOKEN_MAX_AGE`` (seconds) without W030.
TOKEN_MAX_AGE_WARNING = 3600
#: Shortest ``TOKEN_MAX_AGE`` (seconds) without W032.
TOKEN_MAX_AGE_MINIMUM = 10


@register("ravyn_channels")
def check_limits(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W030 long-lived tokens, W032 tokens too short-lived to use, W031 no cap on rooms per connection."""
    try:
        raw = _raw()
    except TypeError:  # E004 says so
        return []
    messages: list[CheckMessage] = []
    age = raw.get("TOKEN_MAX_AGE")
    if age is not None and _non_negative_number(age) and age > TOKEN_MAX_AGE_WARNING:
        messages.append(
            Warning(
                f"RAVYN_CHANNELS['TOKEN_MAX_AGE'] is {age!r} seconds: whoever copies a token (a log, a "
                "screenshot, a shared URL) can open connections as its user for that long.",
                hint="Keep tokens short-lived (the default is 300 s) and have the page fetch a new one "
                "when it reconnects; revoke_tokens(user) voids them earlier.",
                id="ravyn_channels.W030",
            )
        )
    if age is not None and _non_negative_number(age) and age < TOKEN_MAX_AGE_MINIMUM:
        closes = (
            " and a socket it opened is closed as soon as it expires (CLOSE_ON_TOKEN_EXPIRY)"
            if get_settings().CLOSE_ON_TOKEN_EXPIRY
            else ""
        )
        messages.append(
            Warning(
                f"RAVYN_CHANNELS['TOKEN_MAX_AGE'] is {age!r} seconds: a token's issue time is counted in whole "
                f"seconds, so a token may be refused at the handshake a moment after it was issued{closes}.",
                hint=f"Use at least {TOKEN_MAX_AGE_MINIMUM} seconds (the default is 300); to void tokens "
                "early, call revoke_tokens(user).",
                id="ravyn_channels.W032",
            )
        )
    if "MAX_ROOMS_PER_CONNECTION" in raw and raw["MAX_ROOMS_PER_CONNECTION"] is None:
        messages.append(
            Warning(
                "RAVYN_CHANNELS['MAX_ROOMS_PER_CONNECTION'] is None: a client may join rooms without "
                "bound, and each room costs the server memory and presence work.",
                hint="Set a limit (the default is 100); catch TooManyRooms in handlers that let "
                "clients choose rooms.",
                id="ravyn_channels.W031",
            )
        )
    return messages


#: Channel layers history can keep its store beside (``ravyn_channels.history.store.open_store``).
_HISTORY_LAYERS = (
    "channels.layers.InMemoryChannelLayer",
    "channels_redis.core.RedisChannelLayer",
    "channels_redis.pubsub.RedisPubSubChannelLayer",
)


@register("ravyn_channels")
def check_history_layers(
    app_configs: Any = None, managers: Iterable[Any] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E090 a manager with ``history=`` whose channel layer cannot hold a history store."""
    if managers is None:
        from .manager import _managers

        managers = list(_managers.values())
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    messages: list[CheckMessage] = []
    for manager in managers:
        if getattr(manager, "_history", None) is None:
            continue
        try:
            alias = manager._layer_alias or get_settings().CHANNEL_LAYER
        except TypeError:  # E004 says so
            continue
        config = layers.get(alias)
        backend = str(config.get("BACKEND", "")) if isinstance(config, dict) else ""
        if config is not None and backend not in _HISTORY_LAYERS:
            messages.append(
                Error(
                    f"ConnectionManager {manager.name!r} keeps history (history=...) but CHANNEL_LAYERS[{alias!r}] "
                    f"is {backend or 'unknown'!r}: history lives in the layer's Redis (channels-redis) or in "
                    "memory (InMemoryChannelLayer), so its broadcasts would fail.",
                    hint="Use CHANNEL_LAYERS = {'default': ravyn_channels.layers.redis_channel_layer(REDIS_URL)} "
                    "(or the in-memory layer for one process), or create the manager without history=.",
                    id="ravyn_channels.E090",
                )
            )
    return messages


@register("ravyn_channels")
def check_rate_limits(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E100 ``RATE_LIMITS`` that cannot be parsed (nonsense rates, unknown keys, a bad policy or code)."""
    from .limits import global_limit

    try:
        raw = _raw()
    except TypeError:  # E004 says so
        return []
    if "RATE_LIMITS" not in raw or raw["RATE_LIMITS"] is None:
        return []
    try:
        global_limit(raw["RATE_LIMITS"])
    except (TypeError, ValueError) as exc:
        return [
            Error(
                f"RAVYN_CHANNELS['RATE_LIMITS'] is invalid: {exc}",
                hint="For example {'HANDSHAKES_PER_IP': '60/min', 'HANDSHAKES_PER_USER': '30/min', "
                "'MESSAGES': '20/s burst 40', 'ON_MESSAGE_LIMIT': 'close', 'CLOSE_CODE': 1008}; "
                "see the README's 'Rate limits'.",
                id="ravyn_channels.E100",
            )
        ]
    return []


@register("ravyn_channels", Tags.security, deploy=True)
def check_rate_limits_deploy(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W100 a per-IP handshake limit while ``TRUSTED_PROXIES`` is empty."""
    from .limits import global_limit
    from .routing import registered_routes

    try:
        conf = get_settings()
        limit = global_limit()
    except (TypeError, ValueError):  # E004/E100 say so
        return []
    per_ip = limit.handshakes_per_ip is not None or any(
        r.rate_limit is not None and r.rate_limit.handshakes_per_ip is not None for r in registered_routes()
    )
    if per_ip and not conf.TRUSTED_PROXIES:
        return [
            Warning(
                "Handshakes are limited per client IP, and TRUSTED_PROXIES is empty: behind a reverse proxy "
                "every client has the proxy's address and shares one bucket.",
                hint="Behind a proxy, list it in RAVYN_CHANNELS['TRUSTED_PROXIES'] (its X-Forwarded-For is then "
                "believed); serving clients directly, ignore this warning.",
                id="ravyn_channels.W100",
            )
        ]
    return []
