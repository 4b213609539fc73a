"""System checks, each called directly (as daphne's tests do), one situation per test."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.checks import Error, Warning
from django.core.checks.registry import registry
from django.test import override_settings

from ravyn_channels import Query, WebSocket, WebSocketRoute
from ravyn_channels.checks import check_channel_layer, check_layer_timeouts, check_routes, check_settings
from ravyn_channels.layers import prepare_layer, redis_channel_layer


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
