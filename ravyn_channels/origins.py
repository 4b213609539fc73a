"""Which ``Origin`` a handshake may come from.

Patterns come from the route (``origins=[...]``), else ``RAVYN_CHANNELS["ORIGINS"]``,
else ``ALLOWED_HOSTS``. A pattern is one of:

- ``"*"``: any origin;
- a host: ``"example.com"``, or ``".example.com"`` for the domain and its
  subdomains (Django's ``ALLOWED_HOSTS`` syntax); any scheme and port;
- a host and port: ``"localhost:8000"``; any scheme, that port only;
- an origin: ``"https://example.com"``, ``"http://localhost:8000"``,
  ``"https://.example.com"``; that scheme and that port only (the scheme's
  default port, 80 or 443, when none is written).

``ALLOWED_HOSTS`` entries are hosts, so origins derived from them match the
host only: ``http://localhost:9999`` passes ``ALLOWED_HOSTS = ["localhost"]``.
Write ``ORIGINS`` with schemes and ports to pin them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.utils.http import is_same_domain

from .conf import get_settings

__all__ = ["OriginPattern", "allowed_origins", "origin_refusal", "parse_pattern"]

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


class OriginPattern(NamedTuple):
    """One parsed pattern: ``scheme`` and ``port`` are ``None`` when the pattern leaves them open."""

    scheme: str | None
    host: str  # lower case; a leading "." for a domain and its subdomains; "*" for anything
    port: int | None

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        """Whether an origin (lower-case scheme and host, port or ``None``) fits this pattern."""
        if self.host == "*":
            return True
        if self.scheme is not None:
            if scheme != self.scheme:
                return False
            wanted = self.port if self.port is not None else _DEFAULT_PORTS.get(self.scheme)
            if (port if port is not None else _DEFAULT_PORTS.get(scheme)) != wanted:
                return False
        elif self.port is not None and (port if port is not None else _DEFAULT_PORTS.get(scheme)) != self.port:
            return False
        return is_same_domain(host, self.host)


def parse_pattern(pattern: str) -> OriginPattern:
    """Parse an ``ORIGINS`` / ``origins=`` entry; ``ValueError`` says what is wrong with it."""
    text = pattern.strip().lower()
    if text == "*":
        return OriginPattern(None, "*", None)
    has_scheme = "://" in text
    try:
        parts = urlsplit(text if has_scheme else f"//{text}")
    except ValueError as exc:
        raise ValueError(f"origin pattern {pattern!r}: {exc}") from None
    if has_scheme and parts.scheme not in ("http", "https"):
        raise ValueError(f"origin pattern {pattern!r}: the scheme must be http or https")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"origin pattern {pattern!r}: an origin is scheme://host[:port], without a path")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"origin pattern {pattern!r}: the port is not a number from 0 to 65535") from None
    host = parts.hostname or ""
    if "*" in host:
        raise ValueError(f"origin pattern {pattern!r}: write '.example.com' (not '*.example.com') for subdomains")
    if not host.strip("."):
        raise ValueError(f"origin pattern {pattern!r} has no host")
    return OriginPattern(parts.scheme or None, host, port)


@lru_cache(maxsize=64)
def _patterns(raw: tuple[str, ...]) -> tuple[OriginPattern, ...]:
    parsed = []
    for pattern in raw:
        try:
            parsed.append(parse_pattern(pattern))
        except ValueError:
            continue  # reported by the system check ravyn_channels.E021; never matches
    return tuple(parsed)


def allowed_origins(route_origins: Sequence[str] | None) -> list[str]:
    """Origin patterns for a route: its own, ``RAVYN_CHANNELS["ORIGINS"]``, or ``ALLOWED_HOSTS``."""
    if route_origins is not None:
        return list(route_origins)
    configured = get_settings().ORIGINS
    if configured is not None:
        return list(configured)
    hosts = list(django_settings.ALLOWED_HOSTS)
    if django_settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts


def _origin_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"origin":
            return value.decode("latin-1")
    return None


def origin_refusal(scope: Mapping[str, Any], patterns: Sequence[str]) -> str | None:
    """Why the handshake's ``Origin`` is refused, or ``None`` when it is allowed."""
    raw = _origin_header(scope.get("headers", ()))
    if raw is None:
        if get_settings().REQUIRE_ORIGIN:
            return "no Origin header (RAVYN_CHANNELS['REQUIRE_ORIGIN'] is True)"
        return None
    allowed = f"allowed: {list(patterns) or 'nothing; ALLOWED_HOSTS is empty'}"
    try:
        parts = urlsplit(raw.strip().lower())
        port = parts.port
    except ValueError:  # "http://[x", "http://a:99999"
        return f"Origin {raw!r} is not a valid origin ({allowed})"
    host = parts.hostname
    if not parts.scheme or not host:
        return f"Origin {raw!r} is not allowed ({allowed})"
    if any(p.matches(parts.scheme, host, port) for p in _patterns(tuple(patterns))):
        return None
    return f"Origin {raw!r} is not allowed ({allowed})"
