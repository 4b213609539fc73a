"""System checks, each called directly (as daphne's tests do), one situation per test."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.checks import Error, Warning
from django.core.checks.registry import registry
from django.test import override_settings

from ravyn_channels import Query, WebSocket, WebSocketRoute
from ravyn_channels.checks import (
    check_channel_layer,
    check_layer_timeouts,
    check_limits,
    check_origins,
    check_origins_deploy,
    check_routes,
    check_settings,
)
from ravyn_channels.layers import MAX_CONNECTIONS, prepare_layer, redis_channel_layer


def route(path: str, endpoint: Any = None) -> WebSocketRoute[Any]:
    """A route that is not added to the registry (checks get it through ``routes=``)."""

    async def handler(websocket: WebSocket) -> None: ...

    return WebSocketRoute(endpoint or handler, path)


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def test_checks_are_registered() -> None:
    checks = registry.get_checks()
    assert {check_routes, check_settings, check_channel_layer, check_layer_timeouts} <= set(checks)


def test_clean_routes_pass() -> None:
    assert check_routes(routes=[route("/a/{x}"), route("/b/{x}"), route("/a/{x:int}")]) == []


def test_e001_two_routes_with_the_same_path() -> None:
    first, second = route("/chat/{room}"), route("/chat/{name}")
    [error] = check_routes(routes=[first, route("/other"), second])
    assert isinstance(error, Error) and error.id == "ravyn_channels.E001"
    assert error.obj is second
    assert "both serve '/chat/{name}'" in error.msg and "(declared first) gets every connection" in error.msg
    assert "Give one of them another path" in error.hint


def test_e001_only_for_the_selected_apps() -> None:
    from django.apps import apps

    a, b = route("/dup"), route("/dup")  # both in tests.test_checks
    assert ids(check_routes(app_configs=[apps.get_app_config("auth")], routes=[a, b])) == []


def test_e002_endpoint_replaced_by_a_sync_function() -> None:
    r = route("/sync")

    def sync_handler(websocket: WebSocket) -> None: ...

    r.endpoint = sync_handler  # type: ignore[assignment]
    [error] = check_routes(routes=[r])
    assert error.id == "ravyn_channels.E002"
    assert "is not an 'async def' function" in error.msg and "write the handler as 'async def'" in error.hint.lower()


def test_e003_parameter_that_cannot_be_filled() -> None:
    r = route("/unfillable")

    async def needs_room(websocket: WebSocket, room: dict[str, int]) -> None: ...

    r.endpoint = needs_room  # replaced after decoration: the check re-reads the signature
    [error] = check_routes(routes=[r])
    assert error.id == "ravyn_channels.E003"
    assert "parameter 'room' cannot be filled" in error.msg


def test_e003_logged_in_user_without_authentication() -> None:
    async def needs_user(websocket: WebSocket, user: User, page: int = Query(1)) -> None: ...

    async def optional_user(websocket: WebSocket, user: User | None) -> None: ...

    routes = [route("/me", needs_user), route("/maybe", optional_user)]
    assert check_routes(routes=routes) == []  # sessions + auth + a database: AuthMiddlewareStack runs
    apps_without_sessions = ["django.contrib.auth", "django.contrib.contenttypes", "channels", "ravyn_channels"]
    with override_settings(INSTALLED_APPS=apps_without_sessions):
        [error] = check_routes(routes=routes)
    assert error.id == "ravyn_channels.E003" and error.obj is routes[0]
    assert "parameter 'user' needs a logged-in user, but no authentication runs" in error.msg
    assert "django.contrib.sessions" in error.hint and "token_user" in error.hint


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("INBOX_SIZE", 0, "a positive int"),
        ("MAX_MESSAGE_SIZE", "1MB", "a positive int (bytes)"),
        ("INBOX_OVERFLOW", "drop", "'close' or 'backpressure'"),
        ("AUTODISCOVER", "sockets", "a list of module names, e.g. ['sockets']"),
        ("ORIGINS", "https://a.example", "None or a list of origin patterns"),
        ("REQUIRE_ORIGIN", "yes", "True or False"),
        ("CLOSE_TIMEOUT", -1, "a number of seconds >= 0"),
        ("MAX_ROOMS_PER_CONNECTION", 0, "None or a positive int, e.g. 100"),
        ("TOKEN_REVOKE_ON_LOGOUT", "yes", "True or False"),
    ],
)
def test_e004_invalid_setting_value(key: str, value: Any, expected: str) -> None:
    with override_settings(RAVYN_CHANNELS={key: value}):
        [error] = check_settings()
    assert error.id == "ravyn_channels.E004"
    assert error.msg == f"RAVYN_CHANNELS[{key!r}] is {value!r}; it must be {expected}."


def test_e004_setting_that_is_not_a_dict() -> None:
    with override_settings(RAVYN_CHANNELS=[("INBOX_SIZE", 3)]):
        [error] = check_settings()
        # the layer check still runs, with the default alias (tests: in-memory layer, DEBUG off)
        assert ids(check_channel_layer()) == ["ravyn_channels.W003"]
    assert error.id == "ravyn_channels.E004" and "must be a dict, got list" in error.msg


def test_valid_settings_pass() -> None:
    with override_settings(RAVYN_CHANNELS={"INBOX_SIZE": 8, "ORIGINS": ["https://a.example"], "CLOSE_TIMEOUT": 0}):
        assert check_settings() == []


def test_w001_unknown_key() -> None:
    with override_settings(RAVYN_CHANNELS={"INBOX_SIZ": 3}):
        [warning] = check_settings()
    assert isinstance(warning, Warning) and warning.id == "ravyn_channels.W001"


def test_w002_no_channel_layer() -> None:
    with override_settings(CHANNEL_LAYERS={}):
        [warning] = check_channel_layer()
    assert warning.id == "ravyn_channels.W002" and "CHANNEL_LAYERS has no 'default' layer" in warning.msg
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=layers, RAVYN_CHANNELS={"CHANNEL_LAYER": "events"}, DEBUG=True):
        [warning] = check_channel_layer()
    assert warning.id == "ravyn_channels.W002" and "no 'events' layer" in warning.msg


def test_w003_in_memory_layer_without_debug() -> None:
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=layers, DEBUG=False):
        [warning] = check_channel_layer()
    assert warning.id == "ravyn_channels.W003" and "only the clients of the process" in warning.msg
    with override_settings(CHANNEL_LAYERS=layers, DEBUG=True):
        assert check_channel_layer() == []
    redis = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {}}}
    with override_settings(CHANNEL_LAYERS=redis, DEBUG=False):
        assert check_channel_layer() == []


def test_w020_allowed_hosts_wildcard_without_origins() -> None:
    routes = [route("/open"), route("/pinned")]
    with override_settings(ALLOWED_HOSTS=["*"]):
        [warning] = check_origins(routes=routes)
        assert isinstance(warning, Warning) and warning.id == "ravyn_channels.W020"
        assert "ALLOWED_HOSTS contains '*'" in warning.msg and "any Origin are accepted (2 route(s)" in warning.msg
        assert "RAVYN_CHANNELS['ORIGINS']" in (warning.hint or "")
    with override_settings(ALLOWED_HOSTS=["*"], RAVYN_CHANNELS={"ORIGINS": ["https://example.com"]}):
        assert check_origins(routes=routes) == []
    with override_settings(ALLOWED_HOSTS=["*"], RAVYN_CHANNELS={"ORIGINS": ["*"]}):  # a knowing choice
        assert check_origins(routes=routes) == []
    with override_settings(ALLOWED_HOSTS=["example.com"]):
        assert check_origins(routes=routes) == []
    pinned = WebSocketRoute(routes[0].endpoint, "/p", origins=["https://example.com"])
    with override_settings(ALLOWED_HOSTS=["*"]):  # every route names its own origins
        assert check_origins(routes=[pinned]) == []


def test_e020_the_same_is_an_error_under_check_deploy() -> None:
    assert check_origins_deploy in registry.get_checks(include_deployment_checks=True)
    assert check_origins_deploy not in registry.get_checks(include_deployment_checks=False)
    with override_settings(ALLOWED_HOSTS=["*"]):
        [error] = check_origins_deploy(routes=[route("/open")])
        assert isinstance(error, Error) and error.id == "ravyn_channels.E020"
    with override_settings(ALLOWED_HOSTS=["*"], RAVYN_CHANNELS={"ORIGINS": ["https://example.com"]}):
        assert check_origins_deploy(routes=[route("/open")]) == []


def test_e021_an_origin_pattern_that_never_matches() -> None:
    with override_settings(
        RAVYN_CHANNELS={"ORIGINS": ["https://ok.example", "*.example.com", "https://a.example/app"]}
    ):
        errors = check_origins(routes=[])
    assert ids(errors) == ["ravyn_channels.E021", "ravyn_channels.E021"]
    assert "origin pattern '*.example.com': write '.example.com'" in errors[0].msg
    assert "'https://a.example/app': an origin is scheme://host[:port], without a path" in errors[1].msg


def test_e022_a_trusted_proxy_that_is_not_an_address() -> None:
    with override_settings(RAVYN_CHANNELS={"TRUSTED_PROXIES": ["10.0.0.0/8", "nginx"]}):
        [error] = check_origins(routes=[])
    assert error.id == "ravyn_channels.E022" and "'nginx' is not an IP address or network" in error.msg
    with override_settings(RAVYN_CHANNELS={"TRUSTED_PROXIES": "10.0.0.1"}):
        assert ids(check_settings()) == ["ravyn_channels.E004"]


@pytest.mark.parametrize(
    ("key", "value", "check_id"),
    [
        ("HANDSHAKE_TIMEOUT", 0, "ravyn_channels.E040"),
        ("HANDSHAKE_TIMEOUT", "5s", "ravyn_channels.E040"),
        ("MAX_MESSAGE_FRAGMENTS", 0, "ravyn_channels.E041"),
        ("MAX_MESSAGE_FRAGMENTS", 10.5, "ravyn_channels.E041"),
    ],
)
def test_e040_e041_invalid_transport_setting(key: str, value: Any, check_id: str) -> None:
    from ravyn_channels.checks import check_transport_settings

    with override_settings(RAVYN_CHANNELS={key: value}):
        [error] = check_transport_settings()
        assert check_settings() == []  # reported once, by its own id
    assert error.id == check_id
    assert f"RAVYN_CHANNELS[{key!r}] is {value!r}" in error.msg


def test_valid_transport_settings_pass() -> None:
    from ravyn_channels.checks import check_transport_settings

    for value in ({"HANDSHAKE_TIMEOUT": 2.5, "MAX_MESSAGE_FRAGMENTS": 64}, {"HANDSHAKE_TIMEOUT": None}):
        with override_settings(RAVYN_CHANNELS=value):
            assert check_transport_settings() == []


def test_w040_low_open_file_limit_on_deploy_only() -> None:
    from ravyn_channels.checks import check_open_files

    [warning] = check_open_files(limit=1024)
    assert warning.id == "ravyn_channels.W040" and "only 1024 files" in warning.msg
    assert "LimitNOFILE" in warning.hint
    assert check_open_files(limit=65536) == []
    assert check_open_files in registry.get_checks(include_deployment_checks=True)
    assert check_open_files not in registry.get_checks(include_deployment_checks=False)


CORE = "channels_redis.core.RedisChannelLayer"


@pytest.mark.parametrize(
    "hosts",
    [
        None,
        [("127.0.0.1", 6379)],
        ["redis://127.0.0.1:6379/0"],
        [{"address": "redis://127.0.0.1:6379/0"}],
        [{"host": "127.0.0.1", "port": 6379}],
    ],
    ids=["default", "tuple", "url", "address-dict", "host-dict"],
)
def test_w010_redis_channel_layer_hosts_we_adjust(hosts: Any) -> None:
    config: dict[str, Any] = {"hosts": hosts} if hosts is not None else {}
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": CORE, "CONFIG": config}}):
        [warning] = check_layer_timeouts()
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        assert prepare_layer(layer) and all(host["socket_timeout"] is None for host in layer.hosts)
        assert all(host["max_connections"] == MAX_CONNECTIONS for host in layer.hosts)
        assert not prepare_layer(layer)  # once is enough
    assert isinstance(warning, Warning) and warning.id == "ravyn_channels.W010"
    assert "sets socket_timeout=None on these hosts" in warning.msg and "'socket_timeout': None" in warning.hint


@pytest.mark.parametrize(
    "host",
    [{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 5}, "redis://127.0.0.1:6379/0?socket_timeout=2"],
)
def test_w011_redis_channel_layer_timeout_we_cannot_make_safe(host: Any) -> None:
    with override_settings(CHANNEL_LAYERS={"events": {"BACKEND": CORE, "CONFIG": {"hosts": [host]}}}):
        messages = check_layer_timeouts()
    assert ids(messages) == ["ravyn_channels.W011"]
    assert "CHANNEL_LAYERS['events'] host 0 sets socket_timeout=" in messages[0].msg
    assert "not in the URL's query string" in messages[0].hint


def test_safe_layer_configurations_pass() -> None:
    layers = {
        "helper": redis_channel_layer(pubsub=False),
        "pubsub": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [("h", 1)]}},
        "long": {"BACKEND": CORE, "CONFIG": {"hosts": [{"address": "redis://h", "socket_timeout": 30}]}},
        "memory": {"BACKEND": "channels.layers.InMemoryChannelLayer"},
    }
    with override_settings(CHANNEL_LAYERS=layers):
        assert check_layer_timeouts() == []


def test_w030_long_lived_tokens() -> None:
    with override_settings(RAVYN_CHANNELS={"TOKEN_MAX_AGE": 86400}):
        [warning] = check_limits()
    assert warning.id == "ravyn_channels.W030" and "86400 seconds" in warning.msg and warning.hint
    with override_settings(RAVYN_CHANNELS={"TOKEN_MAX_AGE": 3600}):
        assert check_limits() == []


def test_w032_tokens_too_short_lived_to_use() -> None:
    with override_settings(RAVYN_CHANNELS={"TOKEN_MAX_AGE": 2}):
        [warning] = check_limits()
    assert warning.id == "ravyn_channels.W032" and "2 seconds" in warning.msg and "whole seconds" in warning.msg
    assert "closed as soon as it expires" in warning.msg and "revoke_tokens" in warning.hint
    with override_settings(RAVYN_CHANNELS={"TOKEN_MAX_AGE": 0, "CLOSE_ON_TOKEN_EXPIRY": False}):
        [warning] = check_limits()
    assert warning.id == "ravyn_channels.W032" and "closed as soon" not in warning.msg
    with override_settings(RAVYN_CHANNELS={"TOKEN_MAX_AGE": 10}):
        assert check_limits() == []


def test_e004_token_close_settings_are_booleans() -> None:
    with override_settings(RAVYN_CHANNELS={"CLOSE_ON_TOKEN_REVOKE": "no", "CLOSE_ON_TOKEN_EXPIRY": None}):
        errors = check_settings()
    assert [e.id for e in errors] == ["ravyn_channels.E004", "ravyn_channels.E004"]
    assert "CLOSE_ON_TOKEN_REVOKE" in errors[0].msg and "True or False" in errors[0].msg
    assert "CLOSE_ON_TOKEN_EXPIRY" in errors[1].msg
    with override_settings(RAVYN_CHANNELS={"CLOSE_ON_TOKEN_REVOKE": False, "CLOSE_ON_TOKEN_EXPIRY": False}):
        assert check_settings() == []


def test_w031_no_room_cap() -> None:
    with override_settings(RAVYN_CHANNELS={"MAX_ROOMS_PER_CONNECTION": None}):
        [warning] = check_limits()
    assert warning.id == "ravyn_channels.W031" and "TooManyRooms" in warning.hint
    with override_settings(RAVYN_CHANNELS={"MAX_ROOMS_PER_CONNECTION": 500}):
        assert check_limits() == []
    assert check_limits() == []  # the defaults
