"""E004/W001 (``RAVYN_CHANNELS`` values), W030 to W032 (tokens, rooms per connection), E100/W100 (rate limits)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from ..conf import _raw, get_settings, unknown_keys


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
                hint="Set a limit (the default is 100); catch TooManyRooms in handlers that let clients choose rooms.",
                id="ravyn_channels.W031",
            )
        )
    return messages


#: Channel layers history can keep its store beside (``ravyn_channels.history.store.open_store``).


@register("ravyn_channels")
def check_rate_limits(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E100 ``RATE_LIMITS`` that cannot be parsed (nonsense rates, unknown keys, a bad policy or code)."""
    from ..limits import global_limit

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
    from ..limits import global_limit
    from ..routing import registered_routes

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
