"""W020/E020 to E022 (origins, proxies) and E040/E041/W040 (transport bounds, open files)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from ..conf import _raw, get_settings
from .routes import _routes
from .settings import _non_negative_number, _positive_int, _str_list


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
    from ..origins import parse_pattern
    from ..proxies import parse_networks

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
