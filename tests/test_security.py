"""Secure defaults: Origin against ALLOWED_HOSTS (or the route's/settings' origins), inbox size."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest
from django.test import override_settings

from ravyn_channels import Query, WebSocket, websocket
from ravyn_channels.asgi import get_asgi_application
from ravyn_channels.origins import origin_refusal, parse_pattern
from ravyn_channels.proxies import PEER_KEY, client_address, parse_networks
from ravyn_channels.safetext import escape, escape_json
from ravyn_channels.testing import HandshakeRefused, connect
from ravyn_channels.websocket import Address

pytestmark = pytest.mark.django_db


@websocket("/sec/open")
async def open_route(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("in")


@websocket("/sec/app-only", origins=["https://app.example"])
async def app_only(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("in")


async def admitted(route: object, path: str, origin: str | None) -> bool:
    headers = {"origin": origin} if origin else None
    try:
        async with connect(route, path, headers=headers) as ws:
            return await ws.receive_text() == "in"
    except HandshakeRefused:
        return False


async def test_origin_must_match_allowed_hosts(rc_logs: pytest.LogCaptureFixture) -> None:
    assert await admitted(open_route, "/sec/open", "http://localhost:8000")
    assert not await admitted(open_route, "/sec/open", "https://evil.example")
    [line] = [r for r in rc_logs.records if "evil.example" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert "Origin 'https://evil.example' is not allowed" in line.getMessage()


async def test_missing_origin_is_allowed_unless_required() -> None:
    assert await admitted(open_route, "/sec/open", None)
    with override_settings(RAVYN_CHANNELS={"REQUIRE_ORIGIN": True}):
        assert not await admitted(open_route, "/sec/open", None)
        assert await admitted(open_route, "/sec/open", "http://127.0.0.1")


async def test_route_origins_replace_allowed_hosts() -> None:
    assert await admitted(app_only, "/sec/app-only", "https://app.example")
    assert not await admitted(app_only, "/sec/app-only", "http://localhost")
    assert not await admitted(app_only, "/sec/app-only", "http://app.example")  # scheme counts


async def test_settings_origins_replace_allowed_hosts() -> None:
    # Channels' pattern syntax: a leading dot matches the domain and its subdomains
    with override_settings(RAVYN_CHANNELS={"ORIGINS": ["https://.example.org"]}):
        assert await admitted(open_route, "/sec/open", "https://chat.example.org")
        assert not await admitted(open_route, "/sec/open", "http://localhost")
        assert await admitted(app_only, "/sec/app-only", "https://app.example")  # the route's own still win


def test_origins_must_be_a_list() -> None:
    async def h(websocket: WebSocket) -> None: ...

    with pytest.raises(TypeError, match=r"origins= takes a list of patterns, e\.g\. origins=\['https://a\.example'\]"):
        websocket("/sec/str", origins="https://a.example")(h)


@override_settings(RAVYN_CHANNELS={"INBOX_SIZE": 2})
async def test_inbox_size_setting() -> None:
    release = asyncio.Event()

    @websocket("/sec/slow")
    async def slow(websocket: WebSocket) -> None:
        await websocket.accept()
        await release.wait()

    async with connect(slow, "/sec/slow") as ws:
        for i in range(3):
            await ws.send_text(str(i))
        assert await ws.wait_closed() == 1013
        release.set()


# -- origins: scheme and port (issue 12, point 9) ---------------------------------------------

ORIGIN_CASES = [
    # pattern, origin, allowed
    ("localhost", "http://localhost:9999", True),  # a host (ALLOWED_HOSTS syntax): any scheme, any port
    ("localhost", "https://localhost", True),
    ("localhost:8000", "http://localhost:8000", True),  # host and port: that port only
    ("localhost:8000", "http://localhost:9999", False),
    ("localhost:8000", "https://localhost", False),
    ("http://localhost:8000", "http://localhost:8000", True),  # an origin: exact scheme and port
    ("http://localhost:8000", "https://localhost:8000", False),
    ("http://localhost:8000", "http://localhost:8001", False),
    ("https://example.com", "https://example.com", True),
    ("https://example.com", "https://example.com:443", True),  # the scheme's default port
    ("https://example.com", "https://example.com:8443", False),
    ("https://example.com", "http://example.com", False),
    ("https://.example.com", "https://chat.example.com", True),  # domain and subdomains
    ("https://.example.com", "https://example.com", True),
    ("https://.example.com", "http://chat.example.com", False),
    (".example.com", "http://a.b.example.com:81", True),
    (".example.com", "https://example.org", False),
    ("[::1]", "http://[::1]:8000", True),
    ("*", "https://evil.example", True),
    ("HTTPS://Example.COM", "https://example.com", True),
]


@pytest.mark.parametrize(("pattern", "origin", "allowed"), ORIGIN_CASES)
def test_origin_patterns(pattern: str, origin: str, allowed: bool) -> None:
    scope = {"headers": [(b"origin", origin.encode())]}
    assert (origin_refusal(scope, [pattern]) is None) is allowed


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        ("*.example.com", "write '.example.com'"),
        ("https://*.example.com", "write '.example.com'"),
        ("ftp://example.com", "the scheme must be http or https"),
        ("https://example.com/app", "without a path"),
        ("https://", "has no host"),
        ("example.com:http", "the port is not a number"),
    ],
)
def test_bad_origin_patterns_are_named(pattern: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        parse_pattern(pattern)
    # a bad pattern never matches anything (the check ravyn_channels.E021 reports it)
    assert origin_refusal({"headers": [(b"origin", b"https://example.com")]}, [pattern]) is not None


@pytest.mark.parametrize("origin", ["null", "http://localhost:99999", "http://[::1", "localhost", "http://", "\x00"])
def test_malformed_origins_are_refused_not_crashed(origin: str) -> None:
    refusal = origin_refusal({"headers": [(b"origin", origin.encode())]}, ["localhost"])
    assert refusal is not None and refusal.startswith(f"Origin {origin!r}")


def test_a_route_with_a_bad_origin_pattern_fails_at_decoration() -> None:
    async def h(websocket: WebSocket) -> None: ...

    with pytest.raises(ValueError, match=r"origins=: origin pattern '\*\.example\.com': write '\.example\.com'"):
        websocket("/sec/star", origins=["*.example.com"])(h)


async def test_an_origin_with_an_invalid_port_is_refused_with_one_warning(rc_logs: pytest.LogCaptureFixture) -> None:
    assert not await admitted(open_route, "/sec/open", "http://localhost:99999")
    [line] = [r for r in rc_logs.records if "99999" in r.getMessage()]
    assert line.levelno == logging.WARNING and line.exc_info is None


async def test_settings_origins_pin_scheme_and_port() -> None:
    with override_settings(RAVYN_CHANNELS={"ORIGINS": ["http://localhost:8000", "localhost:8001"]}):
        assert await admitted(open_route, "/sec/open", "http://localhost:8000")
        assert not await admitted(open_route, "/sec/open", "http://localhost:9999")
        assert not await admitted(open_route, "/sec/open", "https://localhost:8000")
        assert await admitted(open_route, "/sec/open", "https://localhost:8001")
        assert not await admitted(open_route, "/sec/open", "http://localhost")


# -- the client's address behind trusted proxies (point 8) -------------------------------------


def scope_from(peer: str, *forwarded: str, client: str | None = None) -> dict[str, Any]:
    """A scope as daphne builds it: ``client`` (rewritten by --proxy-headers) and the TCP peer."""
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": [client or peer, 4000], PEER_KEY: [peer, 4000], "headers": headers}


def test_without_trusted_proxies_the_servers_client_is_used() -> None:
    assert client_address(scope_from("127.0.0.1", "10.0.0.5", client="10.0.0.5")) == Address("10.0.0.5", 4000)
    assert client_address({"client": None}) is None


@override_settings(RAVYN_CHANNELS={"TRUSTED_PROXIES": ["127.0.0.1", "10.1.0.0/16"]})
def test_forwarded_for_is_read_from_the_right_skipping_trusted_proxies() -> None:
    # nginx appends the address it saw: everything left of it was written by the client
    assert client_address(scope_from("127.0.0.1", "10.0.0.5, 203.0.113.7")) == Address("203.0.113.7", 0)
    assert client_address(scope_from("127.0.0.1", "10.0.0.5, 203.0.113.7, 10.1.2.3")) == Address("203.0.113.7", 0)
    # two headers count as one list, in order
    assert client_address(scope_from("127.0.0.1", "10.0.0.5", "203.0.113.8")) == Address("203.0.113.8", 0)
    # daphne --proxy-headers already took the leftmost entry: the peer and the header decide instead
    forged = scope_from("127.0.0.1", "10.0.0.5, 203.0.113.7", client="10.0.0.5")
    assert client_address(forged) == Address("203.0.113.7", 0)
    # a trusted proxy that forwards nothing: the proxy itself
    assert client_address(scope_from("127.0.0.1")) == Address("127.0.0.1", 4000)


@override_settings(RAVYN_CHANNELS={"TRUSTED_PROXIES": ["10.9.9.9"]})
def test_a_peer_that_is_not_a_trusted_proxy_is_the_client_whatever_it_sends() -> None:
    assert client_address(scope_from("198.51.100.4", "10.0.0.5")) == Address("198.51.100.4", 4000)


@override_settings(RAVYN_CHANNELS={"TRUSTED_PROXIES": ["127.0.0.1"]})
async def test_websocket_client_is_the_resolved_address() -> None:
    @websocket("/sec/whoami")
    async def whoami(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(str(websocket.client and websocket.client.host))

    headers = {"x-forwarded-for": "10.0.0.5, 203.0.113.9"}
    async with connect(whoami, "/sec/whoami", headers=headers, scope={"client": ("127.0.0.1", 5000)}) as ws:
        assert await ws.receive_text() == "203.0.113.9"


def test_parse_networks_names_a_bad_entry() -> None:
    with pytest.raises(ValueError, match="TRUSTED_PROXIES entry 'nginx' is not an IP address or network"):
        parse_networks(["127.0.0.1", "nginx"])


# -- more than DATA_UPLOAD_MAX_NUMBER_FIELDS query parameters (point 10) -----------------------


async def test_too_many_query_parameters_refuse_the_handshake_with_one_warning(
    rc_logs: pytest.LogCaptureFixture,
) -> None:
    @websocket("/sec/query")
    async def query(websocket: WebSocket, page: int = Query(1)) -> None:
        await websocket.accept()
        await websocket.send_text(f"{page} {len(websocket.query_params)}")

    async with connect(query, "/sec/query?" + "&".join(f"k{i}=v" for i in range(999)) + "&page=2") as ws:
        assert await ws.receive_text() == "2 1000"  # exactly the limit: served
    with pytest.raises(HandshakeRefused):
        async with connect(query, "/sec/query?" + "&".join(f"k{i}=v" for i in range(1001))):
            pass
    [line] = [r for r in rc_logs.records if r.levelno >= logging.INFO]
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert "1001 query parameters (DATA_UPLOAD_MAX_NUMBER_FIELDS is 1000)" in line.getMessage()
    with override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=None):
        async with connect(query, "/sec/query?" + "&".join(f"k{i}=v" for i in range(1001))) as ws:
            assert await ws.receive_text() == "1 1001"


# -- control characters in log lines (point 12) ----------------------------------------------


def test_escape_makes_one_visible_line() -> None:
    assert escape("/a\r\nINFO forged\tline") == "/a\\r\\nINFO forged\\tline"
    assert escape("évil\u202etxt.exe\x1b[31m\x85\u2028") == "évil\\u202etxt.exe\\u001b[31m\\u0085\\u2028"
    assert escape("x" * 1100) == "x" * 1000 + "…(100 more)"
    assert escape_json('{"a": "\u202e\u2066"}') == '{"a": "\\u202e\\u2066"}'


async def test_untrusted_values_are_escaped_in_log_lines(rc_logs: pytest.LogCaptureFixture) -> None:
    assert not await admitted(open_route, "/sec/open", "https://evil.example\x1b[2J\x85")
    with pytest.raises(HandshakeRefused):
        async with connect(get_asgi_application(), "/no/route%0D%0ACRITICAL forged%E2%80%AE"):
            pass
    messages = [r.getMessage() for r in rc_logs.records]
    assert len(messages) == 2
    assert not any(c in m for m in messages for c in "\r\n\x1b\x85\u202e")
    assert "evil.example\\x1b[2J\\x85" in messages[0]
    assert "Refused websocket /no/route\\r\\nCRITICAL forged\\u202e from" in messages[1]
